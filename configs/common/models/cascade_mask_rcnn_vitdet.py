# Cascade Mask R-CNN with ViTDet's backbone, neck and LN heads (Detectron2's
# projects/ViTDet/configs/COCO/cascade_mask_rcnn_vitdet_b_100ep.py): three class-agnostic 4conv1fc
# LN box stages at IoU 0.5 / 0.6 / 0.7 with box-coder weights (10,10,5,5) x 1, 2, 3.
from .cascade_mask_rcnn_vit import cascade_roi_heads
from .mask_rcnn_vitdet import model

model.roi_heads = cascade_roi_heads(model.roi_heads)
