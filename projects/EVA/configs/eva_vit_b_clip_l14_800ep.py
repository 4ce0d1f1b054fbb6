# EVA-style feature-reconstruction MIM, ViT-B/16 student, teacher = OpenAI CLIP ViT-L/14 (Fang et al.,
# CVPR 2023; EVA-01/eva: modeling_pretrain.py, engine_for_pretraining.py, run_eva_pretraining.py).
# Student: BEiT-style (learned mask token, absolute positions, q / v biases, no layer scale, no
# relative position), block-wise masking of 105 / 256 patches scaled to the grid (80 / 196, ~41%,
# blocks >= 16); a linear head on the masked tokens to the teacher's 768-d projected patch
# features (ln_post, then proj, no cls); loss -cos. Teacher: frozen, its patch-14 kernel resampled
# to 16 and positions resized 16x16 -> 14x14 (the student's grid). Student and teacher both see the
# crop normalised with CLIP's mean / std (datasets.py: ImageNet statistics only with
# --imagenet_default_mean_and_std, which EVA's command does not pass); the detector fine-tunes with
# ImageNet statistics, as EVA's own detection configs do.
# Recipe (EVA's run_eva_pretraining.py): AdamW lr 1e-3 (not batch-scaled), betas (0.9, 0.98), eps
# 1e-6, wd 0.05 (none on 1-D tensors, biases, pos_embed and cls_token: optim_factory.py), warm-up
# from 0 (utils.cosine_scheduler's start; --warmup_lr is parsed and never used), then a cosine over
# the remaining iterations to min_lr 1e-5, gradient clipping 3.0, drop path 0.1, batch 4096,
# RandomResizedCrop (0.2-1, bicubic) + flip; weights start from a normal truncated at +-1 std
# (std 0.02). EVA-g ran 150 epochs on Merged-30M; on IN-1k this file runs 800 epochs (the length of
# the other MIM rows here) with 10 warm-up epochs (EVA: 2 of 150 on 30M images).
# The teacher file is yours: an open_clip / OpenAI state dict of CLIP ViT-L/14 (e.g. open_clip's
# `open_clip_pytorch_model.bin` of ViT-L-14 / openai) or timm's vit_large_patch14_clip_224.openai
# state dict; nothing here downloads it. Reports name the run "feature-reconstruction MIM (teacher
# = CLIP ViT-L/14 (OpenAI))": with a CLIP teacher, this is EVA's pre-training.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import (
    CLIP_PIXEL_MEAN,
    CLIP_PIXEL_STD,
    BlockMaskGenerator,
    FeatureMIM,
    build_pretrain_encoder,
    build_teacher,
    mae_transform,
)
from vitdet_bench.solver import cosine_schedule, get_optimizer_params

from ...common.pretrain_base import dataloader, epochs_to_iters, lr_multiplier, optimizer, train

_arch = "vit_b"
_image_size = 224
_batch = 4096
_epochs = 800
_grid = _image_size // 16

teacher = L(build_teacher)(
    path="checkpoints/open_clip_vit_l14_openai.bin",
    name="CLIP ViT-L/14 (OpenAI)",
    image_size="${model.encoder.img_size}",  # the teacher runs at the student's grid
    patch_size=16,  # ... and patch size: its 14 x 14 kernel is resampled
    embed_dim=1024,  # what the file must be (checked)
    depth=24,
    num_heads=16,
    checkpoint_patch_size=14,
    act="quick_gelu",  # OpenAI's CLIP
    norm_eps=1e-5,
    projection=True,  # EVA's targets are the projected features (baaivision/EVA#16)
    pixel_mean=CLIP_PIXEL_MEAN,
    pixel_std=CLIP_PIXEL_STD,
)
model = L(FeatureMIM)(
    encoder=L(build_pretrain_encoder)(arch=_arch, img_size=_image_size, pos_embed="learned", qv_bias=True,
                                      drop_path_rate=0.1),
    teacher="${teacher}",
    init_std=0.02,
    pixel_mean=CLIP_PIXEL_MEAN,  # the student's input, as DataAugmentationForEVA's patch_transform
    pixel_std=CLIP_PIXEL_STD,
)
dataloader.train.mapper.transform = L(mae_transform)(image_size=_image_size, min_scale=0.2)
dataloader.train.mapper.mask_generator = L(BlockMaskGenerator)(
    input_size=_grid, num_masking_patches=round(105 / 256 * _grid * _grid), min_num_patches=16, max_num_patches=None,
    min_aspect=0.3,
)
dataloader.train.dataset.labels = False
dataloader.train.total_batch_size = _batch
optimizer.lr = 1e-3
optimizer.betas = (0.9, 0.98)
optimizer.eps = 1e-6
optimizer.weight_decay = 0.05
# optim_factory.get_parameter_groups (BEiT's rule): no weight decay for 1-D tensors (norms, q / v
# biases), names ending in .bias and no_weight_decay() = {pos_embed, cls_token}; everything else
# decays, the mask token and lm_head included.
optimizer.params = L(get_optimizer_params)(
    weight_decay_norm=None,
    weight_decay_bias=0.0,
    weight_decay_embed=None,
    weight_decay_1d=0.0,
    overrides={"cls_token": {"weight_decay": 0.0}, "pos_embed": {"weight_decay": 0.0}},
)
train.clip_grad.enabled = True
train.clip_grad.max_norm = 3.0
train.max_iter = epochs_to_iters(_epochs, _batch)
# utils.cosine_scheduler(lr, min_lr, epochs, steps, warmup_epochs): np.linspace(0, lr, warm-up
# steps), then lr -> min_lr along a half cosine over the steps after the warm-up.
lr_multiplier.warmup_iters = epochs_to_iters(10, _batch)
lr_multiplier.warmup_factor = 0.0
lr_multiplier.warmup_method = "linspace"
lr_multiplier.rescale_interval = True
lr_multiplier.scheduler = L(cosine_schedule)(min_lr=1e-5, base_lr="${optimizer.lr}")
train.output_dir = "./output/pretrain/eva_vit_b_clip_l14_800ep"
