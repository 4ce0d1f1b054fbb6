# BEiT ViT-B/16 (Bao et al. 2021): block-wise masking of 75 / 196 patches (about 40%, blocks of
# >= 16), shared relative position bias, layer scale 0.1, q/v biases, no absolute positions,
# cross-entropy on the masked patches' visual tokens; AdamW (0.9, 0.999) wd 0.05, lr 1.5e-3 at
# batch 2048, 10 warm-up epochs, 800 epochs on IN-1k, gradient clipping 3.0, drop path 0.1.
#
# The tokenizer BEiT used is DALL-E's dVAE: this file needs its encoder.pkl (OpenAI's; nothing here
# downloads it) and `pip install DALL-E`. Without them use the project's own VQ tokenizer:
#   python tools/train_tokenizer.py --config-file projects/BEiT/configs/tokenizer_vq_vit_b.py
#   then tokenizer.kind=vq tokenizer.path=output/pretrain/tokenizer_vq_vit_b/tokenizer_final.pth
# (results with that tokenizer are "BEiT with a self-trained VQ tokenizer", not BEiT's numbers).
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import BEiT, BlockMaskGenerator, beit_transform, build_pretrain_encoder, build_tokenizer

from ...common.pretrain_base import dataloader, epochs_to_iters, lr_multiplier, optimizer, train

arch = "vit_b"
image_size = 224
batch = 2048
grid = image_size // 16

tokenizer = L(build_tokenizer)(kind="dalle", path="checkpoints/dall_e/encoder.pkl")
model = L(BEiT)(
    encoder=L(build_pretrain_encoder)(
        arch=arch, img_size=image_size, pos_embed="none", rel_pos_bias="shared", init_values=0.1, qv_bias=True,
        drop_path_rate=0.1,
    ),
    tokenizer="${tokenizer}",
)
dataloader.train.mapper.transform = L(beit_transform)(image_size=image_size, min_scale=0.08)
dataloader.train.mapper.mask_generator = L(BlockMaskGenerator)(
    input_size=grid, num_masking_patches=75, min_num_patches=16, max_num_patches=None, min_aspect=0.3
)
dataloader.train.dataset.labels = False
dataloader.train.total_batch_size = batch
optimizer.lr = 1.5e-3
optimizer.betas = (0.9, 0.999)
optimizer.weight_decay = 0.05
train.clip_grad.enabled = True
train.clip_grad.max_norm = 3.0
train.max_iter = epochs_to_iters(800, batch)
lr_multiplier.warmup_iters = epochs_to_iters(10, batch)
lr_multiplier.warmup_factor = 1e-6 / 1.5e-3  # BEiT's warmup_lr 1e-6
train.output_dir = "./output/pretrain/beit_vit_b_800ep"
