# ViTDet (Li et al. 2022), Mask R-CNN ViT-B from MAE: 51.6 AP box / 45.9 AP mask on COCO val2017
# (Table 5; Detectron2's projects/ViTDet mask_rcnn_vitdet_b_100ep.py). Simple feature pyramid,
# LayerNorm in neck and heads, decomposed relative position, AdamW lr 1e-4, wd 0.1, layer-wise lr
# decay 0.7, drop path 0.1, 100 epochs with steps at 88.9% / 96.3% and a 250-iteration warm-up.
from ..common.coco_schedule import epochs_to_iters
from ..common.data.coco_lsj import dataloader
from ..common.models.mask_rcnn_vitdet import model
from ..common.optim import AdamW as optimizer
from ..common.schedule import step_lr_multiplier as lr_multiplier
from ..common.train import train

model.backbone.net.drop_path_rate = 0.1
dataloader.train.total_batch_size = 64
optimizer.lr = 1e-4
optimizer.weight_decay = 0.1
optimizer.params.layer_decay_rate = 0.7
train.amp.enabled = True
train.max_iter = epochs_to_iters(100)
train.eval_period = epochs_to_iters(10)
train.checkpointer.period = epochs_to_iters(10)
train.init_checkpoint = "checkpoints/mae_pretrain_vit_base.pth"
train.output_dir = "./output/COCO/mask_rcnn_vitdet_b_mae_100ep"
