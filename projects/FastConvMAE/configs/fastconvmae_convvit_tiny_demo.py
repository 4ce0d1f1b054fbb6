# FastConvMAE at demo scale: the ConvMAE demo's tiny ConvViT and decoder
# (projects/ConvMAE/configs/convmae_convvit_tiny_demo.py) with 4 complementary views of 16 of the
# 64 stage-3 tokens, on the demo pre-training images at 128 px, on the CPU. Same steps, batch and
# lr as the ConvMAE demo, so the two compare at equal iterations (each FastConvMAE step encodes 4
# visible sets per image and reconstructs every patch 3 times).
from ...common.demo import DEMO_CONVVIT as _DEMO_CONVVIT, DEMO_VIT as _DEMO_VIT, demo_data
from .fastconvmae_convvit_b_50ep import dataloader, lr_multiplier, model, optimizer, train

_image_size = _DEMO_VIT["img_size"]
model.encoder.update(_DEMO_CONVVIT, img_size=_image_size)
model.decoder_dim = 64
model.decoder_depth = 1
model.decoder_num_heads = 4
dataloader.train.mapper.transform.image_size = _image_size
demo_data(dataloader, train, "fastconvmae_convvit_tiny_demo")
optimizer.lr = 1.5e-3
train.max_iter = 200
lr_multiplier.warmup_iters = 20
