# MAE-Lite's detection transfer (Wang et al., ICML 2023; wangsr126/mae-lite
# projects/eval_tools/det/mask_rcnn_vitdet_t_100ep.py): ViTDet's Mask R-CNN (simple feature pyramid,
# LayerNorm in neck and heads, window 14 + global blocks 2, 5, 8, 11, decomposed relative position)
# on MAE-Lite's ViT-Tiny (width 192, 12 blocks, 12 heads), LSJ at 640 (scale 0.1-2.0), no drop path,
# activation checkpointing, AMP; AdamW lr 1e-4 x batch / 64, wd 0.05 (none on pos_embed, norms,
# biases), no layer-wise decay, 100 epochs at batch 64 with steps at 88.9% / 96.3% and a
# 250-iteration warm-up. COCO val2017, box / mask AP reported there: MAE-Lite with distillation
# ("D-MAE-Tiny") 42.3 / 37.4, MAE-Tiny 39.9 / 35.4, DeiT-Tiny 40.4 / 35.5, MoCo v3-Tiny 39.7 / 35.1.
# train.init_checkpoint: the export of projects/MAELite/configs/maelite_distill_vit_tiny_400ep.py
# (or any ViT-Tiny file the loader reads; configs/benchmark/coco_vit_t.py runs the comparison).
from ..common.coco_schedule import epochs_to_iters
from ..common.data.coco_lsj import dataloader
from ..common.models.mask_rcnn_vitdet import model
from ..common.optim import AdamW as optimizer
from ..common.schedule import step_lr_multiplier as lr_multiplier
from ..common.train import train

_image_size = 640
_batch = 64

_vit = model.backbone.net
_vit.embed_dim = 192
_vit.num_heads = 12
_vit.drop_path_rate = 0.0
_vit.img_size = _image_size
_vit.use_act_checkpoint = True
model.backbone.square_pad = _image_size
dataloader.train.mapper.image_size = _image_size
dataloader.test.mapper.image_size = _image_size
dataloader.train.total_batch_size = _batch
optimizer.lr = 1e-4 * _batch / 64
optimizer.weight_decay = 0.05
optimizer.params.layer_decay_rate = None
train.amp.enabled = True
train.max_iter = epochs_to_iters(100, _batch)
train.eval_period = epochs_to_iters(10, _batch)
train.checkpointer.period = epochs_to_iters(10, _batch)
train.init_checkpoint = "./output/pretrain/maelite_distill_vit_tiny_400ep/backbone_final.pth"
train.output_dir = "./output/COCO/mask_rcnn_vitdet_t_100ep"
