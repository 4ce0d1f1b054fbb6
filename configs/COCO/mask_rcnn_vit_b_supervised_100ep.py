# Benchmarking paper, Table 1: ViT-B Mask R-CNN from the supervised initialization
# (DeiT ViT-B (300 ep, IN1k labels) / the MAE paper's supervised ViT-L). Expected on COCO val2017: 47.9 AP box / 42.9 AP mask.
# Tuned as the paper (Sec. 4.1): lr 8e-05, weight decay 0.1, drop path 0.1, 100 epochs at batch 64.
from .bench_base_vit_b import dataloader, epochs_to_iters, lr_multiplier, model, optimizer, train

vit = model.backbone.bottom_up.net
vit.drop_path_rate = 0.1
optimizer.lr = 8e-05
optimizer.weight_decay = 0.1
train.max_iter = epochs_to_iters(100)
train.output_dir = "./output/COCO/mask_rcnn_vit_b_supervised_100ep"
# Any format load_backbone_checkpoint reads (converted or as released).
train.init_checkpoint = "checkpoints/deit_base_patch16_224-b5f2ef4d.pth"
