# Cascade Mask R-CNN, ViT-B from MAE, with the benchmarking paper's recipe (BENCH's cascade variant for MAE, 50 epochs; the ViTDet paper reports 54.0 / 46.7 for its own cascade ViT-B recipe).
# Same backbone, neck, data and optimizer as mask_rcnn_vit_b_mae_100ep.py; three class-agnostic
# box stages at IoU 0.5 / 0.6 / 0.7 (configs/common/models/cascade_mask_rcnn_vit.py).
from vitdet_bench.config import LazyCall as L
from vitdet_bench.modeling.detector import CascadeRoIHeads, build_box_head, build_box_predictor

from .mask_rcnn_vit_b_mae_100ep import dataloader, epochs_to_iters, lr_multiplier, model, optimizer, train

_heads = model.roi_heads
model.roi_heads = L(CascadeRoIHeads)(
    box_roi_pool=_heads.box_roi_pool,
    box_heads=[
        L(build_box_head)(in_channels="${....backbone.out_channels}", pooler_resolution=7,
                          conv_dims=[256, 256, 256, 256], fc_dims=[1024], norm="SyncBN")
        for _ in range(3)
    ],
    box_predictors=[
        L(build_box_predictor)(in_channels=1024, num_classes="${....num_classes}", class_agnostic=True)
        for _ in range(3)
    ],
    stage_iou_thresholds=[0.5, 0.6, 0.7],
    stage_bbox_reg_weights=[[10.0, 10.0, 5.0, 5.0], [20.0, 20.0, 10.0, 10.0], [30.0, 30.0, 15.0, 15.0]],
    smooth_l1_beta=0.0,
    mask_roi_pool=_heads.mask_roi_pool,
    mask_head=_heads.mask_head,
    mask_predictor=_heads.mask_predictor,
)
train.max_iter = epochs_to_iters(50)
train.output_dir = "./output/COCO/cascade_mask_rcnn_vit_b_mae_50ep"
