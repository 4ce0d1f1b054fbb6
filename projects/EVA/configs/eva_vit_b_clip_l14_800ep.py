# EVA-style feature-reconstruction MIM, ViT-B/16 student, teacher = OpenAI CLIP ViT-L/14 (Fang et al.,
# CVPR 2023; EVA-01/eva: modeling_pretrain.py, engine_for_pretraining.py, run_eva_pretraining.py).
# Student: BEiT-style (learned mask token, absolute positions, q / v biases, no layer scale, no
# relative position), block-wise masking of 105 / 256 patches scaled to the grid (80 / 196, ~41%,
# blocks >= 16); a linear head on the masked tokens to the teacher's 768-d projected patch
# features (ln_post, then proj, no cls); loss -cos. Teacher: frozen, its own CLIP normalisation,
# its patch-14 kernel resampled to 16 and positions resized 16x16 -> 14x14 (the student's grid).
# Recipe (EVA's): AdamW lr 1e-3 (not batch-scaled), betas (0.9, 0.98), eps 1e-6, wd 0.05, warm-up
# from 1e-6, cosine to 1e-5, gradient clipping 3.0, drop path 0.1, batch 4096, RandomResizedCrop
# (0.2-1, bicubic) + flip. EVA-g ran 150 epochs on Merged-30M; on IN-1k this file runs 800 epochs
# (the length of the other MIM rows here) with 10 warm-up epochs (EVA: 2 of 150 on 30M images).
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
train.clip_grad.enabled = True
train.clip_grad.max_norm = 3.0
train.max_iter = epochs_to_iters(_epochs, _batch)
lr_multiplier.warmup_iters = epochs_to_iters(10, _batch)
lr_multiplier.warmup_factor = 1e-6 / 1e-3  # EVA's warmup_lr
lr_multiplier.scheduler.end_value = 1e-5 / 1e-3  # EVA's min_lr
train.output_dir = "./output/pretrain/eva_vit_b_clip_l14_800ep"
