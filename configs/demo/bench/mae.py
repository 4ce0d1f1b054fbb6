# MAE initialization at demo scale: the ViT pre-trained by projects/MAE/configs/mae_vit_tiny_demo.py
# (the runner sets train.init_checkpoint).
from ..bench_vit_tiny import dataloader, lr_multiplier, model, optimizer, train

train.output_dir = "./output/demo_bench/mae"
