# Benchmarking paper, Table 1: ViT-B Mask R-CNN from BEiT (800 epochs on IN-1k with the DALL-E tokenizer;
# layer scale, q / v biases and bias tables come with it).
# Expected on COCO val2017: 49.8 AP box / 44.4 AP mask.
# The row's settings on the shared recipe (bench_base_vit_b.py: lr 8e-5, weight decay 0.1, drop path
# 0.1, 100 epochs at batch 64): only what differs, and the checkpoint.
from .bench_base_vit_b import dataloader, lr_multiplier, model, optimizer, train

_vit = model.backbone.bottom_up.net
_vit.init_values = 0.1  # BEiT's layer scale
_vit.qv_bias = True  # BEiT's q / v biases (no key bias)
# Any format the backbone loader reads (as released or converted).
train.init_checkpoint = "checkpoints/beit_base_patch16_224_pt1k_800ep.pth"
train.output_dir = "./output/COCO/mask_rcnn_vit_b_beit_100ep"
