# BEiT ViT-B/16 (Bao et al. 2021): block-wise masking of 75 / 196 patches (about 40%, blocks of
# >= 16), shared relative position bias, layer scale 0.1, q/v biases, no absolute positions,
# cross-entropy on the masked patches' visual tokens; AdamW (0.9, 0.999) wd 0.05, lr 1.5e-3 at
# batch 2048, 10 warm-up epochs from lr 0, then a cosine over the remaining steps down to
# min_lr 1e-5, 800 epochs on IN-1k, gradient clipping 3.0, drop path 0.1. As the official code
# (modeling_pretrain.py, optim_factory.py, run_beit_pretraining.py): the shared relative position
# table has 3 learned cls rows (exported with it; the detector's loader drops them and reports
# it), weights start from a normal truncated at +-1 std, and weight decay skips 1-D parameters,
# biases and the cls token but not the relative position table or the mask token.
#
# One known, accepted difference: the tokenizer sees the model's own 224-px crop (the DALL-E
# tokenizer halves it to 112 px, bicubic with antialiasing), where BEiT's loader makes a second,
# 112-px Lanczos resample of the same crop region for DALL-E.
#
# The tokenizer BEiT used is DALL-E's dVAE: this file needs its encoder.pkl (OpenAI's; nothing here
# downloads it) and `pip install DALL-E`. Without them use the project's own VQ tokenizer:
#   python tools/train_tokenizer.py --config-file projects/BEiT/configs/tokenizer_vq_vit_b.py
#   then tokenizer.kind=vq tokenizer.path=output/pretrain/tokenizer_vq_vit_b/tokenizer_final.pth
# (results with that tokenizer are "BEiT with a self-trained VQ tokenizer", not BEiT's numbers).
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import BEiT, BlockMaskGenerator, beit_transform, build_pretrain_encoder, build_tokenizer
from vitdet_bench.solver import cosine_schedule, get_optimizer_params

from ...common.pretrain_base import dataloader, epochs_to_iters, lr_multiplier, optimizer, train

_arch = "vit_b"
_image_size = 224
_batch = 2048
_grid = _image_size // 16

tokenizer = L(build_tokenizer)(kind="dalle", path="checkpoints/dall_e/encoder.pkl")
model = L(BEiT)(
    encoder=L(build_pretrain_encoder)(
        arch=_arch, img_size=_image_size, pos_embed="none", rel_pos_bias="shared", init_values=0.1, qv_bias=True,
        drop_path_rate=0.1,
    ),
    tokenizer="${tokenizer}",
)
dataloader.train.mapper.transform = L(beit_transform)(image_size=_image_size, min_scale=0.08)
dataloader.train.mapper.mask_generator = L(BlockMaskGenerator)(
    input_size=_grid, num_masking_patches=75, min_num_patches=16, max_num_patches=None, min_aspect=0.3
)
dataloader.train.dataset.labels = False
dataloader.train.total_batch_size = _batch
optimizer.lr = 1.5e-3
optimizer.betas = (0.9, 0.999)
optimizer.weight_decay = 0.05
# optim_factory.get_parameter_groups: no weight decay for 1-D parameters (norms, layer-scale
# gammas, q / v biases), biases and no_weight_decay() = {cls_token, pos_embed} (BEiT pre-trains
# without pos_embed); everything else decays, the relative position table and mask token too.
optimizer.params = L(get_optimizer_params)(
    weight_decay_norm=None,
    weight_decay_bias=0.0,
    weight_decay_embed=None,  # the ViT's own list (pos_embed, bias tables) is the detector's rule
    weight_decay_1d=0.0,
    overrides={"cls_token": {"weight_decay": 0.0}, "pos_embed": {"weight_decay": 0.0}},
)
train.clip_grad.enabled = True
train.clip_grad.max_norm = 3.0
train.max_iter = epochs_to_iters(800, _batch)
# utils.cosine_scheduler: linear warm-up from 0 (its start_warmup_value; --warmup_lr is never
# passed to it), then a half cosine over the remaining steps down to --min_lr 1e-5.
lr_multiplier.warmup_iters = epochs_to_iters(10, _batch)
lr_multiplier.warmup_factor = 0.0
lr_multiplier.rescale_interval = True
lr_multiplier.scheduler = L(cosine_schedule)(min_lr=1e-5, base_lr="${optimizer.lr}")
train.output_dir = "./output/pretrain/beit_vit_b_800ep"
