# Benchmarking paper, Table 1: ViT-L Mask R-CNN from the mae initialization
# (MAE, 1600 ep on IN1k, normalized-pixel target). Expected on COCO val2017: 53.3 AP box / 47.2 AP mask.
# Tuned as the paper (Sec. 4.1): lr 8e-05, weight decay 0.1, drop path 0.3, 100 epochs at batch 64.
from .bench_base_vit_l import dataloader, epochs_to_iters, lr_multiplier, model, optimizer, train

vit = model.backbone.bottom_up.net
vit.drop_path_rate = 0.3
optimizer.lr = 8e-05
optimizer.weight_decay = 0.1
train.max_iter = epochs_to_iters(100)
train.output_dir = "./output/COCO/mask_rcnn_vit_l_mae_100ep"
# Any format load_backbone_checkpoint reads (converted or as released).
train.init_checkpoint = "checkpoints/mae_pretrain_vit_large.pth"
