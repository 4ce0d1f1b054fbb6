# Supervised ViT-B/16 on ImageNet-1k, DeiT's recipe (Touvron et al. 2021): AdamW lr 5e-4 x 1024 /
# 512, wd 0.05, 5 warm-up epochs from 1e-6, cosine to min_lr 1e-5, 300 epochs at batch 1024, label
# smoothing 0.1, RandAugment rand-m9-mstd0.5-inc1, Mixup 0.8 / CutMix 1.0, drop path 0.1. (DeiT's
# random erasing and repeated augmentation are not reproduced.)
#
# The schedule is timm's CosineLRScheduler as DeiT's main.py builds it (create_scheduler: t_initial
# = 300 epochs, lr_min 1e-5, warmup_lr 1e-6 over 5 epochs, the cosine counted from epoch 0, not
# after the warm-up). DeiT passes --cooldown-epochs 10, but timm's create_scheduler only adds them to
# the epoch count it returns, which main.py discards (`lr_scheduler, _ = create_scheduler(...)`,
# then `for epoch in range(args.start_epoch, args.epochs)`): DeiT trains 300 epochs and never
# reaches the cool-down. So does this file (_cooldown_epochs = 0). timm's own train.py trains the
# returned 310 epochs, the last 10 at min_lr: set _cooldown_epochs = 10 for that (or override
# train.max_iter and lr_multiplier.cooldown_iters). DeiT steps its lr once per epoch (after the
# epoch, so epoch e trains at the schedule's value for e - 1); here it moves every iteration.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import SupervisedViT, build_pretrain_encoder, deit_transform
from vitdet_bench.solver import cosine_schedule, get_optimizer_params

from ...common.pretrain_base import dataloader, epochs_to_iters, lr_multiplier, optimizer, train

_arch = "vit_b"
_image_size = 224
_batch = 1024
_epochs = 300
_cooldown_epochs = 0  # DeiT's main.py never trains its --cooldown-epochs (see above); timm's train.py: 10

model = L(SupervisedViT)(
    encoder=L(build_pretrain_encoder)(arch=_arch, img_size=_image_size, pos_embed="learned", drop_path_rate=0.1),
    num_classes=1000,
    label_smoothing=0.1,
    mixup_alpha=0.8,
    cutmix_alpha=1.0,
)
dataloader.train.mapper.transform = L(deit_transform)(image_size=_image_size, rand_augment="rand-m9-mstd0.5-inc1")
dataloader.train.total_batch_size = _batch
optimizer.lr = 5e-4 * _batch / 512
optimizer.betas = (0.9, 0.999)
optimizer.weight_decay = 0.05
# DeiT's main.py: timm's create_optimizer: no weight decay for 1-D parameters, biases and the
# model's no_weight_decay() = {pos_embed, cls_token}; everything else decays.
optimizer.params = L(get_optimizer_params)(
    weight_decay_norm=None,
    weight_decay_bias=0.0,
    weight_decay_embed=None,
    weight_decay_1d=0.0,
    overrides={"cls_token": {"weight_decay": 0.0}, "pos_embed": {"weight_decay": 0.0}},
)
train.max_iter = epochs_to_iters(_epochs + _cooldown_epochs, _batch)
lr_multiplier.warmup_iters = epochs_to_iters(5, _batch)
lr_multiplier.warmup_factor = 1e-6 / optimizer.lr  # --warmup-lr 1e-6
lr_multiplier.scheduler = L(cosine_schedule)(min_lr=1e-5, base_lr="${optimizer.lr}")  # --min-lr 1e-5
lr_multiplier.cooldown_iters = epochs_to_iters(_cooldown_epochs, _batch)
train.output_dir = "./output/pretrain/deit_vit_b_300ep"
