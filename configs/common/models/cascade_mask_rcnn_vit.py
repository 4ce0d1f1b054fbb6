# Cascade Mask R-CNN with the same ViT-B backbone and neck as mask_rcnn_vit.py (Detectron2's
# cascade_mask_rcnn_vitdet configs; the benchmarking paper's cascade variant for MAE): three box
# stages at IoU 0.5 / 0.6 / 0.7 without low-quality matches, class-agnostic regression with weights
# (10,10,5,5) x 1, 2, 3, each stage re-sampling the previous stage's boxes, test scores averaged
# over stages, the mask head on the last stage's boxes.
import copy

from vitdet_bench.config import LazyCall as L
from vitdet_bench.modeling.detector import CascadeRoIHeads

from .mask_rcnn_vit import model


def cascade_roi_heads(heads, num_stages=3):
    """Cascade heads from a Mask R-CNN ``roi_heads`` config: its pooler, sampling, test filtering,
    box loss and mask branch, and ``num_stages`` copies of its box head with class-agnostic
    predictors. Other configs (demo, COCO) call this on their own, already sized, heads."""
    box_head = copy.deepcopy(heads.box_head)
    box_head.in_channels = "${....backbone.out_channels}"  # one level deeper: inside a list
    predictor = copy.deepcopy(heads.box_predictor)
    predictor.num_classes = "${....num_classes}"
    predictor.class_agnostic = True
    predictors = [copy.deepcopy(predictor) for _ in range(num_stages)]
    for i, p in enumerate(predictors):  # each stage's predictor reads its own box head's last fc layer
        p.in_channels = f"${{last:${{...box_heads.{i}.fc_dims}}}}"
    return L(CascadeRoIHeads)(
        box_roi_pool=heads.box_roi_pool,
        box_heads=[copy.deepcopy(box_head) for _ in range(num_stages)],
        box_predictors=predictors,
        stage_iou_thresholds=[0.5, 0.6, 0.7],
        stage_bbox_reg_weights=[[10.0, 10.0, 5.0, 5.0], [20.0, 20.0, 10.0, 10.0], [30.0, 30.0, 15.0, 15.0]],
        batch_size_per_image=heads.batch_size_per_image,
        positive_fraction=heads.positive_fraction,
        score_thresh=heads.score_thresh,
        nms_thresh=heads.nms_thresh,
        detections_per_img=heads.detections_per_img,
        smooth_l1_beta=heads.smooth_l1_beta,
        mask_roi_pool=heads.mask_roi_pool,
        mask_head=heads.mask_head,
        mask_predictor=heads.mask_predictor,
    )


model.roi_heads = cascade_roi_heads(model.roi_heads)
