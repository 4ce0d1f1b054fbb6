# Benchmarking paper, Table 1: ViT-B Mask R-CNN from supervised pre-training (ViT-B: DeiT, 300 epochs on
# IN-1k labels; ViT-L: the MAE paper's supervised recipe).
# Expected on COCO val2017: 47.9 AP box / 42.9 AP mask.
# The row's settings on the shared recipe (bench_base_vit_b.py: lr 8e-5, weight decay 0.1, drop path
# 0.1, 100 epochs at batch 64): only what differs, and the checkpoint.
from .bench_base_vit_b import dataloader, lr_multiplier, model, optimizer, train

# Any format the backbone loader reads (as released or converted).
train.init_checkpoint = "checkpoints/deit_base_patch16_224-b5f2ef4d.pth"
train.output_dir = "./output/COCO/mask_rcnn_vit_b_supervised_100ep"
