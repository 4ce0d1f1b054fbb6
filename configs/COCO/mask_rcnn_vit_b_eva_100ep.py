# ViT-B Mask R-CNN (the benchmarking paper's recipe, configs/COCO/bench_base_vit_b.py) from EVA-style
# feature-reconstruction MIM with a CLIP ViT-L/14 teacher (projects/EVA/configs/eva_vit_b_clip_l14_800ep.py).
# Not a row of the paper's Table 1: the hyper-parameters are its MIM rows' (MAE / BEiT: lr 8e-5,
# weight decay 0.1, drop path 0.1, 100 epochs at batch 64: the shared recipe's), not tuned for this
# initialization.
# The student's q / v biases load as one qkv bias with a zero key bias (exact).
from .bench_base_vit_b import dataloader, lr_multiplier, model, optimizer, train

# Any format the backbone loader reads (as released or converted).
train.init_checkpoint = "./output/pretrain/eva_vit_b_clip_l14_800ep/backbone_final.pth"
train.output_dir = "./output/COCO/mask_rcnn_vit_b_eva_100ep"
