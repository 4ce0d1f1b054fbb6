# ConvMAE's detection recipe (Gao et al. 2022; Alpha-VL/ConvMAE DET/DETECTION.md and
# DET/configs/convmae/convmae_base_mask_rcnn_FPN_25ep.py): Mask R-CNN with the ConvViT-B backbone
# (configs/common/models/mask_rcnn_convvit.py), SyncBN in FPN and heads, LSJ at 1024 (0.1-2.0),
# AdamW (0.9, 0.999) lr 8e-5, wd 0.1 (biases included, Detectron2's default; none on norms, the
# position table and the bias tables), drop path 0.1, batch 32, AMP, half-period cosine after a
# 0.125-epoch warm-up (461 iterations), 25 epochs. From ConvMAE-B (1600 ep on IN1k, norm-pix):
# 53.2 AP box / 47.1 AP mask on COCO val2017.
from ..common.coco_schedule import epochs_to_iters, warmup_iters
from ..common.data.coco_lsj import dataloader
from ..common.models.mask_rcnn_convvit import model
from ..common.optim import AdamW as optimizer
from ..common.schedule import cosine_lr_multiplier as lr_multiplier
from ..common.train import train

_batch = 32

model.backbone.bottom_up.drop_path_rate = 0.1
model.backbone.norm = "SyncBN"
model.roi_heads.box_head.norm = "SyncBN"
model.roi_heads.mask_head.norm = "SyncBN"

dataloader.train.total_batch_size = _batch
optimizer.lr = 8e-5
optimizer.weight_decay = 0.1
optimizer.params.weight_decay_bias = None  # the optimizer's weight decay, as Detectron2's default
train.amp.enabled = True
train.max_iter = epochs_to_iters(25, _batch)
train.eval_period = epochs_to_iters(1, _batch)
train.checkpointer.period = epochs_to_iters(1, _batch)
lr_multiplier.warmup_iters = warmup_iters(0.125, _batch)
train.output_dir = "./output/COCO/mask_rcnn_convvit_b_convmae_25ep"
# The released ConvMAE-B file (convmae_base.pth, read as is) or an export of
# projects/ConvMAE/configs/convmae_convvit_b_1600ep.py.
train.init_checkpoint = "checkpoints/convmae_base.pth"
