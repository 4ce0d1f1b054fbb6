# ConvMAE at demo scale: a tiny ConvViT (stage widths 32 / 48 / 96, 2 + 2 conv blocks, 3 ViT blocks
# of 3 heads: the demo ViT's width, configs/demo/mask_rcnn_convvit_tiny.py's backbone) pre-trained
# with the ConvViT-B recipe and a 64-wide, 1-block decoder at 128 px (an 8 x 8 stage-3 grid) on the
# demo pre-training images (projects/common/demo.py), on the CPU.
from ...common.demo import demo_convmae
from .convmae_convvit_b_1600ep import dataloader, lr_multiplier, model, optimizer, train

demo_convmae(model, dataloader, optimizer, lr_multiplier, train, "convmae_convvit_tiny_demo")
