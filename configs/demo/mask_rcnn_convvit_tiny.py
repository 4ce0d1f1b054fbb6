# configs/common/models/mask_rcnn_convvit.py (ConvMAE's ConvViT-B Mask R-CNN) at demo scale: the demo
# detector (configs/demo/mask_rcnn_vit_tiny.py: data, neck and heads, schedule) with a ConvViT in
# place of the ViT, scaled by the same rules: stage widths 256 / 384 / 768 / 8 = 32 / 48 / 96, the
# 2 + 2 conv blocks kept, 3 ViT blocks of 3 heads (the demo ViT's 4 minus one, as ConvViT-B has 11
# where ViT-B has 12), window 8 with the first and last blocks global (ConvViTDet's layout, scaled),
# shared relative position bias tables, the position table of the 128-px pre-training grid
# (projects/ConvMAE/configs/convmae_convvit_tiny_demo.py), learned here (the COCO recipe freezes
# it). The stage outputs (strides 4 / 8 / 16, 32 by pooling) feed the FPN directly.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.modeling import ConvViT

from ...projects.common.demo import DEMO_VIT as _DEMO_VIT
from .mask_rcnn_vit_tiny import _image_size, _width_scale, dataloader, lr_multiplier, model, optimizer, train

_depths = (2, 2, 3)
_global_blocks = [0, 2]

model.backbone.bottom_up = L(ConvViT)(
    img_size=_image_size,
    embed_dims=(256 // _width_scale, 384 // _width_scale, 768 // _width_scale),
    depths=_depths,
    num_heads=3,
    drop_path_rate=0.0,
    use_abs_pos=True,
    pretrain_img_size=_DEMO_VIT["img_size"],
    rel_pos_bias="shared",
    window_size=_DEMO_VIT["img_size"] // 16,  # the demo pre-training grid
    window_block_indexes=[i for i in range(_depths[2]) if i not in _global_blocks],
)
train.output_dir = "./output/demo_mask_rcnn_convvit_tiny"
