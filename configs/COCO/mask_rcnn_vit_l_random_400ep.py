# Benchmarking paper, Table 1: ViT-L Mask R-CNN from random initialization (no pre-training; the paper
# picks the best of 100 / 200 / 400 epochs).
# Expected on COCO val2017: 50.7 AP box / (44.9?) AP mask (the mask value is unverified).
# The row's settings on the shared recipe (bench_base_vit_l.py: lr 8e-5, weight decay 0.1, drop path
# 0.3, 100 epochs at batch 64): only what differs, and the checkpoint.
from ..common.coco_schedule import epochs_to_iters
from .bench_base_vit_l import dataloader, lr_multiplier, model, optimizer, train

optimizer.lr = 1.6e-4
optimizer.weight_decay = 0.2
train.max_iter = epochs_to_iters(400)
lr_multiplier.warmup_iters = 500  # the paper's scratch configs warm up longer
train.output_dir = "./output/COCO/mask_rcnn_vit_l_random_400ep"
