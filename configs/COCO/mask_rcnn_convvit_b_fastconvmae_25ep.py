# ConvMAE's detection recipe (mask_rcnn_convvit_b_convmae_25ep.py) from FastConvMAE-B (50 ep on IN1k,
# 4 complementary views, pixel targets). FastConvMAE's README: 51.0 AP box / 45.4 AP mask on COCO
# val2017 with 25 fine-tuning epochs. No checkpoint is released: pre-train it with
# projects/FastConvMAE/configs/fastconvmae_convvit_b_50ep.py.
from .mask_rcnn_convvit_b_convmae_25ep import dataloader, lr_multiplier, model, optimizer, train

train.output_dir = "./output/COCO/mask_rcnn_convvit_b_fastconvmae_25ep"
train.init_checkpoint = "./output/pretrain/fastconvmae_convvit_b_50ep/backbone_final.pth"
