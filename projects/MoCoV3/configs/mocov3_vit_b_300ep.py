# MoCo v3 ViT-B/16 (Chen, Xie, He 2021; CONFIG.md): projector 3 x 4096 -> 256, predictor 2 x 4096,
# temperature 0.2, momentum 0.99 -> 1 on a cosine, frozen random patch projection, sin-cos
# positions; AdamW lr 1.5e-4 x 4096 / 256, wd 0.1 on every parameter, 40 warm-up epochs, 300
# epochs at batch 4096 (a real batch: the negatives are the batch, so do not replace it by
# accumulation); BYOL's asymmetric two views with crop scale 0.08-1.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import MoCoV3, build_pretrain_encoder, moco_transforms
from vitdet_bench.solver import get_optimizer_params

from ...common.pretrain_base import dataloader, epochs_to_iters, lr_multiplier, optimizer, scaled_lr, train

_arch = "vit_b"
_image_size = 224
_batch = 4096

model = L(MoCoV3)(
    encoder=L(build_pretrain_encoder)(arch=_arch, img_size=_image_size, pos_embed="sincos", freeze_patch_embed=True),
    dim=256,
    mlp_dim=4096,
    temperature=0.2,
    momentum=0.99,
    cosine_momentum=True,
    sync_bn=True,  # MoCo v3 converts its BN to SyncBN; reverted to BN on one process / the CPU
)
views = L(moco_transforms)(image_size=_image_size, min_scale=0.08)
dataloader.train.mapper.transform = views
dataloader.train.dataset.labels = False
dataloader.train.total_batch_size = _batch
optimizer.lr = scaled_lr(1.5e-4, _batch)
optimizer.betas = (0.9, 0.999)
optimizer.weight_decay = 0.1
# main_moco.py: AdamW(model.parameters(), weight_decay=0.1): every parameter decays (norms, biases,
# cls token, predictor and projector BN included); the frozen patch projection has no gradient.
optimizer.params = L(get_optimizer_params)(
    weight_decay_norm=None, weight_decay_bias=None, weight_decay_embed=None, weight_decay_1d=None
)
train.max_iter = epochs_to_iters(300, _batch)
lr_multiplier.warmup_iters = epochs_to_iters(40, _batch)
# main_moco.py adjust_learning_rate: linear warm-up, then a half cosine over the epochs after it.
lr_multiplier.rescale_interval = True
train.output_dir = "./output/pretrain/mocov3_vit_b_300ep"
