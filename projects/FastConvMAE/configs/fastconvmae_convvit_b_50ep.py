# FastConvMAE ConvViT-B (Alpha-VL/FastConvMAE PRETRAIN.md, models_fastconvmae.py): ConvMAE's
# encoder, decoder and norm-pix loss with complementary masking, 4 disjoint 25% visible sets per
# image covering every position (the conv stages run once, stage 3 and the decoder on the 4x
# batch, each patch reconstructed 3 times); pixel targets only, as the released code. AdamW
# (0.9, 0.95) wd 0.05, lr 6e-4 x batch / 256, batch 512 (1 node x 8 GPUs x 64), 50 epochs with 10
# warm-up epochs, RandomResizedCrop (0.2-1) + flip. Loaded by
# configs/COCO/mask_rcnn_convvit_b_fastconvmae_25ep.py. ConvMAE's recipe (convmae_convvit_b_1600ep.py,
# itself MAE's) with FastConvMAE's views, lr, batch and epochs.
from vitdet_bench.pretrain import FastConvMAE

from ...common.pretrain_base import epochs_to_iters, scaled_lr
from ...ConvMAE.configs.convmae_convvit_b_1600ep import dataloader, lr_multiplier, model, optimizer, train

_batch = 512

model._target_ = FastConvMAE
model.num_views = 4
del model.mask_ratio  # the 4 complementary views fix it at 75%
dataloader.train.total_batch_size = _batch
optimizer.lr = scaled_lr(6e-4, _batch)
train.max_iter = epochs_to_iters(50, _batch)
lr_multiplier.warmup_iters = epochs_to_iters(10, _batch)
train.output_dir = "./output/pretrain/fastconvmae_convvit_b_50ep"
