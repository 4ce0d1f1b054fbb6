# Mask R-CNN with ViTDet's plain-backbone design ("Exploring Plain Vision Transformer Backbones for
# Object Detection", Li et al. 2022; Detectron2's configs/common/models/mask_rcnn_vitdet.py): the
# simple feature pyramid from the last map only (no top-down FPN), LayerNorm in the neck and heads,
# window 14 with global blocks 2, 5, 8, 11 and decomposed relative position in every block.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.modeling import SimpleFeaturePyramid, ViT
from vitdet_bench.modeling.backbone import vit_preset

from .mask_rcnn_vit import model

model.backbone = L(SimpleFeaturePyramid)(
    net=L(ViT)(
        **vit_preset("vit_b", out_block_indexes=[]),
        img_size=1024,
        drop_path_rate=0.1,
        use_abs_pos=True,
        use_rel_pos=True,
        pretrain_use_cls_token=True,
    ),
    in_feature="last_feat",
    out_channels=256,
    scale_factors=(4.0, 2.0, 1.0, 0.5),
    norm="LN",
    top_block=True,
    square_pad=1024,
)
model.roi_heads.box_head.norm = "LN"
model.roi_heads.mask_head.norm = "LN"
