# Cascade Mask R-CNN, ViT-B from MAE, with the benchmarking paper's recipe (BENCH's cascade variant for MAE,
# 50 epochs; the ViTDet paper reports 54.0 / 46.7 for its own cascade ViT-B recipe).
# Same backbone, neck, data and optimizer as mask_rcnn_vit_b_mae_100ep.py; three class-agnostic
# box stages at IoU 0.5 / 0.6 / 0.7 (configs/common/models/cascade_mask_rcnn_vit.py).
from ..common.coco_schedule import epochs_to_iters
from ..common.models.cascade_mask_rcnn_vit import cascade_roi_heads
from .mask_rcnn_vit_b_mae_100ep import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads = cascade_roi_heads(model.roi_heads)
train.max_iter = epochs_to_iters(50)
train.output_dir = "./output/COCO/cascade_mask_rcnn_vit_b_mae_50ep"
