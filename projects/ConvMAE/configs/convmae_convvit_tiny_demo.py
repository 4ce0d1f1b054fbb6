# ConvMAE at demo scale: a tiny ConvViT (stage widths 32 / 48 / 96, 2 + 2 conv blocks, 3 ViT blocks
# of 3 heads: the demo ViT's width, configs/demo/mask_rcnn_convvit_tiny.py's backbone) pre-trained
# with the ConvViT-B recipe and a 64-wide, 1-block decoder at 128 px (an 8 x 8 stage-3 grid) on the
# demo pre-training images (projects/common/demo.py), on the CPU.
from ...common.demo import DEMO_CONVVIT as _DEMO_CONVVIT, DEMO_VIT as _DEMO_VIT, demo_data
from .convmae_convvit_b_1600ep import dataloader, lr_multiplier, model, optimizer, train


_image_size = _DEMO_VIT["img_size"]
model.encoder.update(_DEMO_CONVVIT, img_size=_image_size)
model.decoder_dim = 64
model.decoder_depth = 1
model.decoder_num_heads = 4
dataloader.train.mapper.transform.image_size = _image_size
demo_data(dataloader, train, "convmae_convvit_tiny_demo")
optimizer.lr = 1.5e-3
train.max_iter = 200
lr_multiplier.warmup_iters = 20
