# ConvMAE ConvViT-B (Gao et al. 2022; Alpha-VL/ConvMAE PRETRAIN.md, models_convmae.py): MAE's 75%
# random masking on the stage-3 grid, block-wise masks for the conv stages and masked depthwise
# convs, stage 3 on the visible tokens, stage-1/2 outputs fused before the final norm, decoder
# 512 x 8 blocks, norm-pix loss; AdamW (0.9, 0.95) wd 0.05, lr 1.5e-4 x batch / 256, 40 warm-up
# epochs then cosine, 1600 epochs, RandomResizedCrop (0.2-1) + flip. Batch 2048: the released
# model's (the maintainer in Alpha-VL/ConvMAE#6; PRETRAIN.md's command runs 3 x 8 x 128 = 3072).
# The exported ConvViT is what configs/COCO/mask_rcnn_convvit_b_convmae_25ep.py loads.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import ConvMAE, build_convmae_encoder, mae_transform
from vitdet_bench.solver import get_optimizer_params

from ...common.pretrain_base import dataloader, epochs_to_iters, lr_multiplier, optimizer, scaled_lr, train

_arch = "convvit_b"
_image_size = 224
_batch = 2048

model = L(ConvMAE)(
    encoder=L(build_convmae_encoder)(arch=_arch, img_size=_image_size),
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
# main_pretrain.py (MAE's): timm's add_weight_decay with no skip list: no weight decay for 1-D
# parameters and biases; everything else decays, the mask token included (pos_embed is fixed).
optimizer.params = L(get_optimizer_params)(
    weight_decay_norm=None, weight_decay_bias=0.0, weight_decay_embed=None, weight_decay_1d=0.0
)
train.max_iter = epochs_to_iters(1600, _batch)
lr_multiplier.warmup_iters = epochs_to_iters(40, _batch)
# util/lr_sched.py (MAE's): linear warm-up, then a half cosine over the epochs after it.
lr_multiplier.rescale_interval = True
train.output_dir = "./output/pretrain/convmae_convvit_b_1600ep"
