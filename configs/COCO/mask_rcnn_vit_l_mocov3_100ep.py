# Benchmarking paper, Table 1: ViT-L Mask R-CNN from the mocov3 initialization
# (MoCo v3, 300 ep on IN1k (vit-b-300ep.pth.tar, not the linear-probe file)). Expected on COCO val2017: 49.3 AP box / 44.0 AP mask.
# Tuned as the paper (Sec. 4.1): lr 0.00016, weight decay 0.1, drop path 0.3, 100 epochs at batch 64.
from .bench_base_vit_l import dataloader, epochs_to_iters, lr_multiplier, model, optimizer, train

vit = model.backbone.bottom_up.net
vit.drop_path_rate = 0.3
optimizer.lr = 0.00016
optimizer.weight_decay = 0.1
train.max_iter = epochs_to_iters(100)
train.output_dir = "./output/COCO/mask_rcnn_vit_l_mocov3_100ep"
# Any format load_backbone_checkpoint reads (converted or as released).
train.init_checkpoint = "checkpoints/vit-l-300ep.pth.tar"
