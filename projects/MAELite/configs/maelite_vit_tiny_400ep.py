# MAE-Lite ViT-Tiny (Wang et al., ICML 2023; wangsr126/mae-lite projects/mae_lite/mae_lite_exp.py):
# MAE's recipe (projects/MAE/configs/mae_vit_b_800ep.py: 75% masking, norm-pix loss, AdamW (0.9,
# 0.95) wd 0.05, lr 1.5e-4 x batch / 256 at batch 4096, 40 warm-up epochs then cosine to 0) on a
# ViT-Tiny with 12 heads instead of 3 (head width 16), a 96-wide decoder of 1 block with 3 heads,
# RandomResizedCrop 0.08-1 (not MAE's 0.2) resampled bilinear or bicubic per image (timm's loader
# with mae-lite's train_interpolation="random", not MAE's bicubic) + flip, 400 epochs on IN-1k. As
# in MAE, the weight-decay groups are timm's for a model without a no_weight_decay list (mae-lite's
# create_optimizer: no decay on 1-D parameters and biases) and the cosine runs over the epochs after
# the warm-up (its "warmcos"). With attention distillation: maelite_distill_vit_tiny_400ep.py. Detection:
# configs/COCO/mask_rcnn_vitdet_t_100ep.py.
from vitdet_bench.pretrain import MAELite

from ...common.pretrain_base import epochs_to_iters
from ...MAE.configs.mae_vit_b_800ep import dataloader, lr_multiplier, model, optimizer, train

model._target_ = MAELite
model.encoder.arch = "vit_t"
model.encoder.num_heads = 12
model.teacher = None
model.decoder_dim = 96
model.decoder_depth = 1
model.decoder_num_heads = 3
dataloader.train.mapper.transform.min_scale = 0.08
dataloader.train.mapper.transform.interpolation = "random"  # timm_imagenet_exp.py: train_interpolation
train.max_iter = epochs_to_iters(400, dataloader.train.total_batch_size)
train.output_dir = "./output/pretrain/maelite_vit_tiny_400ep"
