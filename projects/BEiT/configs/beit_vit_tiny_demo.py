# BEiT at demo scale, with the project's self-trained VQ tokenizer (run tokenizer_vq_demo.py first):
# block masks of 26 / 64 patches (40%) with blocks of >= 4 (16 / 196 of the paper, scaled to the
# 8 x 8 grid), on the demo pre-training pool at 128 px, batch 64, on the CPU. Named honestly: this is BEiT's
# pre-training with a VQ-VAE tokenizer trained here, not DALL-E's dVAE.
from ...common.demo import DEMO_VIT as _DEMO_VIT
from ...common.demo import demo_data, demo_iters
from .beit_vit_b_800ep import dataloader, lr_multiplier, model, optimizer, tokenizer, train

_image_size = _DEMO_VIT["img_size"]
_grid = _image_size // 16
model.encoder.update(_DEMO_VIT)
model.encoder.drop_path_rate = 0.0
tokenizer.kind = "vq"
tokenizer.path = "./output/pretrain/tokenizer_vq_demo/tokenizer_final.pth"
dataloader.train.mapper.transform.image_size = _image_size
dataloader.train.mapper.mask_generator.input_size = _grid
dataloader.train.mapper.mask_generator.num_masking_patches = 26
dataloader.train.mapper.mask_generator.min_num_patches = 4
demo_data(dataloader, train, "beit_vit_tiny_demo", bf16=True)
optimizer.lr = 1.5e-3
train.max_iter = demo_iters("beit")  # the demo's equal-wall rule (projects/common/demo.py)
lr_multiplier.warmup_iters = 20
