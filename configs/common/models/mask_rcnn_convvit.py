# Mask R-CNN with ConvMAE's ConvViT-B (Gao et al. 2022; Alpha-VL/ConvMAE DET/models/convmae.py and
# DET/configs/convmae/convmae_base_mask_rcnn_FPN_100ep.py): two convolution stages (strides 4 and
# 8, 256 / 384 channels) and 11 ViT blocks at stride 16 with window attention (16 x 16) except the
# global blocks 0, 3, 6 and 10, one relative position bias table shared by the window blocks and one
# by the global blocks (zero-initialised), the pre-trained sin-cos table frozen. The stage outputs
# feed the FPN directly (s4, s8, s16 and a max-pooled s32; no multi-scale adapter), with the heads
# of configs/common/models/mask_rcnn_vit.py: BN in FPN and heads, 2-conv RPN, 4conv1fc box head,
# 4-conv mask head, square padding to 1024.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.modeling import FPN, ConvViT

from .mask_rcnn_vit import model

_depths = (2, 2, 11)
_global = [0, 3, 6, 10]  # ConvViTDet's attention layout (global_attn_index in the reference forward)

model.backbone = L(FPN)(
    bottom_up=L(ConvViT)(
        img_size=1024,
        embed_dims=(256, 384, 768),
        depths=_depths,
        num_heads=12,
        mlp_ratios=(4.0, 4.0, 4.0),
        patch_sizes=(4, 2, 2),
        qkv_bias=True,
        drop_path_rate=0.1,
        use_abs_pos=True,
        pretrain_img_size=224,
        freeze_pos_embed=True,
        rel_pos_bias="shared",
        window_size=16,
        window_block_indexes=[i for i in range(_depths[2]) if i not in _global],
    ),
    out_channels=256,
    norm="BN",
    top_block=True,
    square_pad=1024,
)
