# A CPU-sized version of configs/common/models/mask_rcnn_convvit.py on the bundled demo dataset: the
# demo detector (configs/demo/mask_rcnn_vit_tiny.py: data, heads, schedule) with a tiny ConvViT
# instead of the ViT: stage widths 32 / 48 / 96 (the demo ViT's 96 at stride 16), 2 + 2 conv blocks
# and 3 ViT blocks of 3 heads, window 8 with the first and last blocks global (ConvMAE's detector
# layout scaled down), shared relative position bias tables, the position table of a 128-px
# pre-training grid (projects/ConvMAE/configs/convmae_convvit_tiny_demo.py). Its stage outputs
# (strides 4 / 8 / 16, 32 by pooling) feed the FPN directly.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.modeling import ConvViT

from .mask_rcnn_vit_tiny import dataloader, image_size, lr_multiplier, model, optimizer, train

depths = (2, 2, 3)
global_blocks = [0, 2]

model.backbone.bottom_up = L(ConvViT)(
    img_size=image_size,
    embed_dims=(32, 48, 96),
    depths=depths,
    num_heads=3,
    drop_path_rate=0.0,
    use_abs_pos=True,
    pretrain_img_size=128,
    rel_pos_bias="shared",
    window_size=8,
    window_block_indexes=[i for i in range(depths[2]) if i not in global_blocks],
)
train.output_dir = "./output/demo_mask_rcnn_convvit_tiny"
