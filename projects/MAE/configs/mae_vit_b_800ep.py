# MAE ViT-B/16 (He et al. 2021; PRETRAIN.md): 75% random masking, decoder 512 x 8 blocks,
# norm-pix loss, AdamW (0.9, 0.95) wd 0.05, lr 1.5e-4 x 4096 / 256, 40 warm-up epochs then cosine,
# 800 epochs at batch 4096 (accumulate on fewer GPUs: train.grad_accum_steps), RandomResizedCrop
# (0.2-1) + flip. The exported backbone is what configs/COCO/mask_rcnn_vit_b_mae_100ep.py loads.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import MAE, build_pretrain_encoder, mae_transform
from vitdet_bench.solver import get_optimizer_params

from ...common.pretrain_base import dataloader, epochs_to_iters, lr_multiplier, optimizer, scaled_lr, train

_arch = "vit_b"
_image_size = 224
_batch = 4096

model = L(MAE)(
    encoder=L(build_pretrain_encoder)(arch=_arch, img_size=_image_size, pos_embed="sincos"),
    decoder_dim=512,
    decoder_depth=8,
    decoder_num_heads=16,
    mask_ratio=0.75,
    norm_pix_loss=True,
)
dataloader.train.mapper.transform = L(mae_transform)(image_size=_image_size, min_scale=0.2)
dataloader.train.dataset.labels = False
dataloader.train.total_batch_size = _batch
optimizer.lr = scaled_lr(1.5e-4, _batch)
optimizer.betas = (0.9, 0.95)
optimizer.weight_decay = 0.05
# main_pretrain.py: timm's add_weight_decay with no skip list: no weight decay for 1-D parameters
# and biases; everything else decays, cls and mask tokens included (the sin-cos pos_embed is fixed).
optimizer.params = L(get_optimizer_params)(
    weight_decay_norm=None, weight_decay_bias=0.0, weight_decay_embed=None, weight_decay_1d=0.0
)
train.max_iter = epochs_to_iters(800, _batch)
lr_multiplier.warmup_iters = epochs_to_iters(40, _batch)
# util/lr_sched.py: linear warm-up, then a half cosine over the epochs after it.
lr_multiplier.rescale_interval = True
train.output_dir = "./output/pretrain/mae_vit_b_800ep"
