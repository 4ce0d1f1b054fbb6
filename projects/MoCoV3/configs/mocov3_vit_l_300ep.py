# MoCo v3 ViT-L/16: the ViT-B recipe (mocov3_vit_b_300ep.py) with the larger encoder, as the MoCo v3
# paper trains ViT-L (same optimizer, schedule and batch). Its weights were not released, so the
# benchmarking paper's ViT-L MoCo v3 row (configs/COCO/mask_rcnn_vit_l_mocov3_100ep.py) starts from
# this run's export.
from .mocov3_vit_b_300ep import dataloader, lr_multiplier, model, optimizer, train

model.encoder.arch = "vit_l"
train.output_dir = "./output/pretrain/mocov3_vit_l_300ep"
