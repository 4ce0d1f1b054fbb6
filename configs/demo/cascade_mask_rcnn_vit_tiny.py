# The demo Mask R-CNN (mask_rcnn_vit_tiny.py) with Cascade R-CNN box heads, scaled the same way:
# three 4conv1fc stages of width 64 / 256, IoU 0.5 / 0.6 / 0.7, class-agnostic regression.
from ..common.models.cascade_mask_rcnn_vit import cascade_roi_heads
from .mask_rcnn_vit_tiny import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads = cascade_roi_heads(model.roi_heads)
train.output_dir = "./output/demo_cascade_mask_rcnn_vit_tiny"
