# Benchmarking paper, Table 1: ViT-L Mask R-CNN from MAE (1600 epochs on IN-1k, normalized-pixel target).
# Expected on COCO val2017: 53.3 AP box / 47.2 AP mask.
# The row's settings on the shared recipe (bench_base_vit_l.py: lr 8e-5, weight decay 0.1, drop path
# 0.3, 100 epochs at batch 64): only what differs, and the checkpoint.
from .bench_base_vit_l import dataloader, lr_multiplier, model, optimizer, train

# Any format the backbone loader reads (as released or converted).
train.init_checkpoint = "checkpoints/mae_pretrain_vit_large.pth"
train.output_dir = "./output/COCO/mask_rcnn_vit_l_mae_100ep"
