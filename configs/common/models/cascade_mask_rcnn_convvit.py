# Cascade Mask R-CNN with ConvMAE's ConvViT-B backbone and FPN (mask_rcnn_convvit.py) and the
# cascade heads of cascade_mask_rcnn_vit.py (three stages at IoU 0.5 / 0.6 / 0.7).
from .cascade_mask_rcnn_vit import cascade_roi_heads
from .mask_rcnn_convvit import model

model.roi_heads = cascade_roi_heads(model.roi_heads)
