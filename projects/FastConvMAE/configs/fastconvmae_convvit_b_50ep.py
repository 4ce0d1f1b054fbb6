# FastConvMAE ConvViT-B (Alpha-VL/FastConvMAE PRETRAIN.md, models_fastconvmae.py): ConvMAE's
# encoder, decoder and norm-pix loss with complementary masking, 4 disjoint 25% visible sets per
# image covering every position (the conv stages run once, stage 3 and the decoder on the 4x
# batch, each patch reconstructed 3 times); pixel targets only, as the released code. AdamW
# (0.9, 0.95) wd 0.05, lr 6e-4 x batch / 256, batch 512 (1 node x 8 GPUs x 64), 50 epochs with 10
# warm-up epochs, RandomResizedCrop (0.2-1) + flip. Loaded by
# configs/COCO/mask_rcnn_convvit_b_fastconvmae_25ep.py.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import FastConvMAE, build_convmae_encoder, mae_transform
from vitdet_bench.solver import get_optimizer_params

from ...common.pretrain_base import dataloader, epochs_to_iters, lr_multiplier, optimizer, scaled_lr, train

_arch = "convvit_b"
_image_size = 224
_batch = 512

model = L(FastConvMAE)(
    encoder=L(build_convmae_encoder)(arch=_arch, img_size=_image_size),
    num_views=4,
    decoder_dim=512,
    decoder_depth=8,
    decoder_num_heads=16,
    norm_pix_loss=True,
)
dataloader.train.mapper.transform = L(mae_transform)(image_size=_image_size, min_scale=0.2)
dataloader.train.dataset.labels = False
dataloader.train.total_batch_size = _batch
optimizer.lr = scaled_lr(6e-4, _batch)
optimizer.betas = (0.9, 0.95)
optimizer.weight_decay = 0.05
# main_pretrain.py (MAE's): timm's add_weight_decay with no skip list: no weight decay for 1-D
# parameters and biases; everything else decays, the mask token included (pos_embed is fixed).
optimizer.params = L(get_optimizer_params)(
    weight_decay_norm=None, weight_decay_bias=0.0, weight_decay_embed=None, weight_decay_1d=0.0
)
train.max_iter = epochs_to_iters(50, _batch)
lr_multiplier.warmup_iters = epochs_to_iters(10, _batch)
# util/lr_sched.py (MAE's): linear warm-up, then a half cosine over the epochs after it.
lr_multiplier.rescale_interval = True
train.output_dir = "./output/pretrain/fastconvmae_convvit_b_50ep"
