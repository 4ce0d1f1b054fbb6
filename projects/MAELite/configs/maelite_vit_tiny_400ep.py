# MAE-Lite ViT-Tiny (Wang et al., ICML 2023; wangsr126/mae-lite projects/mae_lite/mae_lite_exp.py):
# MAE on a ViT-Tiny with 12 heads instead of 3 (head width 16), a 96-wide decoder of 1 block with 3
# heads, 75% masking, norm-pix loss; RandomResizedCrop (0.08-1, not MAE's 0.2) + flip, no colour
# jitter; AdamW (0.9, 0.95) wd 0.05, lr 1.5e-4 x batch / 256, 40 warm-up epochs then cosine to 0,
# 400 epochs at batch 4096 on IN-1k. With attention distillation: maelite_distill_vit_tiny_400ep.py.
# Detection: configs/COCO/mask_rcnn_vitdet_t_100ep.py.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import MAELite, build_pretrain_encoder, mae_transform

from ...common.pretrain_base import dataloader, epochs_to_iters, lr_multiplier, optimizer, scaled_lr, train

_arch = "vit_t"
_image_size = 224
_batch = 4096
_epochs = 400

model = L(MAELite)(
    encoder=L(build_pretrain_encoder)(arch=_arch, img_size=_image_size, pos_embed="sincos", num_heads=12),
    teacher=None,
    decoder_dim=96,
    decoder_depth=1,
    decoder_num_heads=3,
    mask_ratio=0.75,
    norm_pix_loss=True,
)
dataloader.train.mapper.transform = L(mae_transform)(image_size=_image_size, min_scale=0.08)
dataloader.train.dataset.labels = False
dataloader.train.total_batch_size = _batch
optimizer.lr = scaled_lr(1.5e-4, _batch)
optimizer.betas = (0.9, 0.95)
optimizer.weight_decay = 0.05
train.max_iter = epochs_to_iters(_epochs, _batch)
lr_multiplier.warmup_iters = epochs_to_iters(40, _batch)
train.output_dir = "./output/pretrain/maelite_vit_tiny_400ep"
