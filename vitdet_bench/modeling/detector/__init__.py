"""Detectors assembled from torchvision's detection parts."""

from .anchors import AnchorGenerator
from .heads import (
    build_box_head,
    build_box_predictor,
    build_mask_head,
    build_mask_predictor,
    build_rpn_head,
)
from .mask_rcnn import LOSS_NAMES, MaskRCNN
from .poolers import LevelRoIAlign
from .roi_heads import RPN, CascadeRoIHeads, StandardRoIHeads, box_regression_loss

__all__ = [
    "AnchorGenerator",
    "CascadeRoIHeads",
    "LOSS_NAMES",
    "RPN",
    "StandardRoIHeads",
    "box_regression_loss",
    "LevelRoIAlign",
    "MaskRCNN",
    "build_box_head",
    "build_box_predictor",
    "build_mask_head",
    "build_mask_predictor",
    "build_rpn_head",
]
