# Benchmarking paper, Table 1: ViT-L Mask R-CNN from MoCo v3 (300 epochs on IN-1k).
# Expected on COCO val2017: 49.3 AP box / 44.0 AP mask.
# The row's settings on the shared recipe (bench_base_vit_l.py: lr 8e-5, weight decay 0.1, drop path
# 0.3, 100 epochs at batch 64): only what differs, and the checkpoint.
# MoCo v3's ViT-L weights were not released (facebookresearch/moco-v3 has ViT-S and ViT-B only):
# pre-train them with projects/MoCoV3/configs/mocov3_vit_l_300ep.py, whose export this names.
from .bench_base_vit_l import dataloader, lr_multiplier, model, optimizer, train

optimizer.lr = 1.6e-4
# Any format the backbone loader reads (as released or converted).
train.init_checkpoint = "./output/pretrain/mocov3_vit_l_300ep/backbone_final.pth"
train.output_dir = "./output/COCO/mask_rcnn_vit_l_mocov3_100ep"
