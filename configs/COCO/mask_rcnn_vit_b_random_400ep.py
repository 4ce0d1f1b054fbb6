# Benchmarking paper, Table 1: ViT-B Mask R-CNN from the random initialization
# (no pre-training; 400 epochs (the paper picks the best of 100 / 200 / 400)). Expected on COCO val2017: 48.9 AP box / (43.6?) AP mask (the mask value is unverified).
# Tuned as the paper (Sec. 4.1): lr 0.00016, weight decay 0.2, drop path 0.1, 400 epochs at batch 64.
from .bench_base_vit_b import dataloader, epochs_to_iters, lr_multiplier, model, optimizer, train

vit = model.backbone.bottom_up.net
lr_multiplier.warmup_iters = 500  # the paper's scratch configs warm up longer
vit.drop_path_rate = 0.1
optimizer.lr = 0.00016
optimizer.weight_decay = 0.2
train.max_iter = epochs_to_iters(400)
train.output_dir = "./output/COCO/mask_rcnn_vit_b_random_400ep"
