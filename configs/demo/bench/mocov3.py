# MoCo v3 initialization at demo scale: the ViT pre-trained by
# projects/MoCoV3/configs/mocov3_vit_tiny_demo.py (the runner sets train.init_checkpoint). The paper
# fine-tunes MoCo v3 with twice the other pre-trained inits' lr (1.6e-4 vs 8e-5).
from ..bench_vit_tiny import dataloader, lr_multiplier, model, optimizer, train

optimizer.lr = 2 * optimizer.lr
train.output_dir = "./output/demo_bench/mocov3"
