# The benchmarking paper's recipe ("Benchmarking Detection Transfer Learning with Vision
# Transformers", Li et al. 2021, Sec. 3-4) for ViT-B on COCO, shared by the Table 1 files:
# Mask R-CNN with window 14 + 4 global blocks, the multi-scale adapter, FPN / heads with SyncBN,
# absolute position embeddings plus BEiT-style relative position biases (one table shared by the
# window blocks, one by the global blocks; zero-initialised unless the checkpoint has them), LSJ at
# 1024 (scale 0.1-2.0), AdamW (0.9, 0.999), batch 64, AMP, half-period cosine after a 0.25-epoch
# warm-up. The per-initialization files set lr, weight decay, drop path and the epochs.
from ..common.coco_schedule import epochs_to_iters, warmup_iters
from ..common.data.coco_lsj import dataloader
from ..common.models.mask_rcnn_vit import model
from ..common.optim import AdamW as optimizer
from ..common.schedule import cosine_lr_multiplier as lr_multiplier
from ..common.train import train

_vit = model.backbone.bottom_up.net
_vit.rel_pos_bias = "shared"
_vit.drop_path_rate = 0.1
model.backbone.norm = "SyncBN"
model.roi_heads.box_head.norm = "SyncBN"
model.roi_heads.mask_head.norm = "SyncBN"

dataloader.train.total_batch_size = 64
optimizer.lr = 8e-5
optimizer.weight_decay = 0.1
train.amp.enabled = True
train.max_iter = epochs_to_iters(100)
train.eval_period = epochs_to_iters(10)
train.checkpointer.period = epochs_to_iters(10)
lr_multiplier.warmup_iters = warmup_iters(0.25)
