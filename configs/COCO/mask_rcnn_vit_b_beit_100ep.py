# Benchmarking paper, Table 1: ViT-B Mask R-CNN from the beit initialization
# (BEiT, 800 ep on IN1k with the DALL-E tokenizer; layer scale 0.1, q/v biases, pre-trained bias tables, random abs. positions). Expected on COCO val2017: 49.8 AP box / 44.4 AP mask.
# Tuned as the paper (Sec. 4.1): lr 8e-05, weight decay 0.1, drop path 0.1, 100 epochs at batch 64.
from .bench_base_vit_b import dataloader, epochs_to_iters, lr_multiplier, model, optimizer, train

vit = model.backbone.bottom_up.net
vit.init_values = 0.1  # layer scale: BEiT only
vit.qv_bias = True  # BEiT's q / v biases (no key bias)
vit.drop_path_rate = 0.1
optimizer.lr = 8e-05
optimizer.weight_decay = 0.1
train.max_iter = epochs_to_iters(100)
train.output_dir = "./output/COCO/mask_rcnn_vit_b_beit_100ep"
# Any format load_backbone_checkpoint reads (converted or as released).
train.init_checkpoint = "checkpoints/beit_base_patch16_224_pt1k_800ep.pth"
