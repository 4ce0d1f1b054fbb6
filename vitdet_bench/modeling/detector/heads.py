"""Head builders over torchvision's detection heads, with the paper's norm choice by name.

The benchmarking paper's "upgraded" Mask R-CNN heads are torchvision's own (its
``maskrcnn_resnet50_fpn_v2`` cites the paper): a 2-conv RPN head, a 4-conv + 1-fc box head with
BatchNorm, and a 4-conv mask head with BatchNorm. These functions only bind a config-friendly
signature (norm by name, ``num_classes`` without the background slot).
"""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead

from ..layers import norm_factory

__all__ = ["build_rpn_head", "build_box_head", "build_box_predictor", "build_mask_head", "build_mask_predictor"]


def _check_num_classes(num_classes: int | None) -> None:
    """Configs that take the class count from the dataset leave ``model.num_classes = None``; the
    training tools fill it, a direct ``instantiate(cfg.model)`` must do so first."""
    if num_classes is None:
        raise ValueError(
            "num_classes is None: this config takes it from the training dataset's categories. Fill it "
            "before instantiate(cfg.model): vitdet_bench.engine.resolve_num_classes(cfg), or set "
            "model.num_classes=N (in the config or as an override)"
        )
    if int(num_classes) <= 0:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes}")


def build_rpn_head(in_channels: int, num_anchors: int = 3, conv_depth: int = 2) -> RPNHead:
    """RPN head with ``conv_depth`` 3x3 convs (2 in the paper) before objectness / deltas."""
    return RPNHead(in_channels, num_anchors, conv_depth=conv_depth)


def build_box_head(
    in_channels: int,
    pooler_resolution: int = 7,
    conv_dims: Sequence[int] = (256, 256, 256, 256),
    fc_dims: Sequence[int] = (1024,),
    norm: str = "BN",
) -> FastRCNNConvFCHead:
    """Box head: ``len(conv_dims)`` 3x3 convs with ``norm``, then fully connected layers."""
    return FastRCNNConvFCHead(
        (in_channels, pooler_resolution, pooler_resolution),
        list(conv_dims),
        list(fc_dims),
        norm_layer=norm_factory(norm),
    )


def build_box_predictor(in_channels: int, num_classes: int, class_agnostic: bool = False) -> FastRCNNPredictor:
    """Class scores (``num_classes`` + background) and box deltas: one set per class, or one
    shared set (``class_agnostic``, as every Cascade R-CNN stage)."""
    _check_num_classes(num_classes)
    predictor = FastRCNNPredictor(in_channels, num_classes + 1)
    if class_agnostic:
        predictor.bbox_pred = nn.Linear(in_channels, 4)
    return predictor


def build_mask_head(
    in_channels: int, conv_dims: Sequence[int] = (256, 256, 256, 256), norm: str = "BN"
) -> MaskRCNNHeads:
    """Mask head: ``len(conv_dims)`` 3x3 convs with ``norm`` on 14x14 RoI features."""
    return MaskRCNNHeads(in_channels, list(conv_dims), 1, norm_layer=norm_factory(norm))


def build_mask_predictor(in_channels: int, dim_reduced: int, num_classes: int) -> MaskRCNNPredictor:
    """2x deconv then per-class mask logits (``num_classes`` + background)."""
    _check_num_classes(num_classes)
    return MaskRCNNPredictor(in_channels, dim_reduced, num_classes + 1)
