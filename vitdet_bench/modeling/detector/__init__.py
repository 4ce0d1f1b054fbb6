"""Detectors assembled from torchvision's detection parts."""

from .heads import (
    build_box_head,
    build_box_predictor,
    build_mask_head,
    build_mask_predictor,
    build_rpn_head,
)
from .mask_rcnn import LOSS_NAMES, MaskRCNN
from .poolers import LevelRoIAlign

__all__ = [
    "LOSS_NAMES",
    "LevelRoIAlign",
    "MaskRCNN",
    "build_box_head",
    "build_box_predictor",
    "build_mask_head",
    "build_mask_predictor",
    "build_rpn_head",
]
