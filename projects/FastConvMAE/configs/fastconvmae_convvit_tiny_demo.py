# FastConvMAE at demo scale: the ConvMAE demo's tiny ConvViT and decoder
# (projects/ConvMAE/configs/convmae_convvit_tiny_demo.py) with 4 complementary views of 16 of the
# 64 stage-3 tokens, on the demo pre-training images at 128 px, on the CPU. Same steps, batch and
# lr as the ConvMAE demo, so the two compare at equal iterations (each FastConvMAE step encodes 4
# visible sets per image and reconstructs every patch 3 times).
from ...common.demo import demo_convmae
from .fastconvmae_convvit_b_50ep import dataloader, lr_multiplier, model, optimizer, train

demo_convmae(model, dataloader, optimizer, lr_multiplier, train, "fastconvmae_convvit_tiny_demo")
