# Cascade Mask R-CNN with the same ViT-B backbone and neck as mask_rcnn_vit.py (Detectron2's
# cascade_mask_rcnn_vitdet configs; the benchmarking paper's cascade variant for MAE): three box
# stages at IoU 0.5 / 0.6 / 0.7 without low-quality matches, class-agnostic regression with weights
# (10,10,5,5) x 1, 2, 3, each stage re-sampling the previous stage's boxes, test scores averaged
# over stages, the mask head on the last stage's boxes.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.modeling.detector import CascadeRoIHeads, build_box_head, build_box_predictor

from .mask_rcnn_vit import model

_heads = model.roi_heads
model.roi_heads = L(CascadeRoIHeads)(
    box_roi_pool=_heads.box_roi_pool,
    box_heads=[
        L(build_box_head)(in_channels="${....backbone.out_channels}", pooler_resolution=7,
                          conv_dims=[256, 256, 256, 256], fc_dims=[1024], norm="BN")
        for _ in range(3)
    ],
    box_predictors=[
        L(build_box_predictor)(in_channels=1024, num_classes="${....num_classes}", class_agnostic=True)
        for _ in range(3)
    ],
    stage_iou_thresholds=[0.5, 0.6, 0.7],
    stage_bbox_reg_weights=[[10.0, 10.0, 5.0, 5.0], [20.0, 20.0, 10.0, 10.0], [30.0, 30.0, 15.0, 15.0]],
    batch_size_per_image=512,
    positive_fraction=0.25,
    score_thresh=0.05,
    nms_thresh=0.5,
    detections_per_img=100,
    smooth_l1_beta=0.0,
    mask_roi_pool=_heads.mask_roi_pool,
    mask_head=_heads.mask_head,
    mask_predictor=_heads.mask_predictor,
)
