# ConvMAE ConvViT-B (Gao et al. 2022; Alpha-VL/ConvMAE PRETRAIN.md, models_convmae.py): MAE's 75%
# random masking on the stage-3 grid, block-wise masks for the conv stages and masked depthwise
# convs, stage 3 on the visible tokens, stage-1/2 outputs fused before the final norm, decoder
# 512 x 8 blocks, norm-pix loss; AdamW (0.9, 0.95) wd 0.05, lr 1.5e-4 x batch / 256, 40 warm-up
# epochs then cosine, 1600 epochs, RandomResizedCrop (0.2-1) + flip. Batch 2048: the released
# model's (the maintainer in Alpha-VL/ConvMAE#6; PRETRAIN.md's command runs 3 x 8 x 128 = 3072).
# The exported ConvViT is what configs/COCO/mask_rcnn_convvit_b_convmae_25ep.py loads. MAE's recipe
# (projects/MAE/configs/mae_vit_b_800ep.py) with the ConvViT, its batch and its epochs.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import ConvMAE, build_convmae_encoder

from ...common.pretrain_base import epochs_to_iters, scaled_lr
from ...MAE.configs.mae_vit_b_800ep import dataloader, lr_multiplier, model, optimizer, train

_batch = 2048

model._target_ = ConvMAE
model.encoder = L(build_convmae_encoder)(arch="convvit_b", img_size=224)
dataloader.train.total_batch_size = _batch
optimizer.lr = scaled_lr(1.5e-4, _batch)
train.max_iter = epochs_to_iters(1600, _batch)
lr_multiplier.warmup_iters = epochs_to_iters(40, _batch)
train.output_dir = "./output/pretrain/convmae_convvit_b_1600ep"
