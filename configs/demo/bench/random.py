# Random initialization at demo scale (BENCH's baseline: nothing pre-trained; every weight is
# initialised as the detector builds it).
from ..bench_vit_tiny import dataloader, lr_multiplier, model, optimizer, train

vit = model.backbone.bottom_up.net
train.output_dir = "./output/demo_bench/random"
