# The demo Mask R-CNN (mask_rcnn_vit_tiny.py) with Cascade R-CNN box heads, scaled the same way:
# three 4conv1fc stages of width 64 / 256, IoU 0.5 / 0.6 / 0.7, class-agnostic regression.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.modeling.detector import CascadeRoIHeads, build_box_head, build_box_predictor

from .mask_rcnn_vit_tiny import dataloader, lr_multiplier, model, optimizer, train

_heads = model.roi_heads
model.roi_heads = L(CascadeRoIHeads)(
    box_roi_pool=_heads.box_roi_pool,
    box_heads=[
        L(build_box_head)(in_channels="${....backbone.out_channels}", pooler_resolution=7,
                          conv_dims=[64, 64, 64, 64], fc_dims=[256], norm="BN")
        for _ in range(3)
    ],
    box_predictors=[
        L(build_box_predictor)(in_channels=256, num_classes="${....num_classes}", class_agnostic=True)
        for _ in range(3)
    ],
    stage_iou_thresholds=[0.5, 0.6, 0.7],
    stage_bbox_reg_weights=[[10.0, 10.0, 5.0, 5.0], [20.0, 20.0, 10.0, 10.0], [30.0, 30.0, 15.0, 15.0]],
    batch_size_per_image=_heads.batch_size_per_image,
    positive_fraction=0.25,
    score_thresh=0.05,
    nms_thresh=0.5,
    detections_per_img=100,
    smooth_l1_beta=0.0,
    mask_roi_pool=_heads.mask_roi_pool,
    mask_head=_heads.mask_head,
    mask_predictor=_heads.mask_predictor,
)

train.output_dir = "./output/demo_cascade_mask_rcnn_vit_tiny"
