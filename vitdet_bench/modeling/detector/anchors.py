"""Anchors exactly as Detectron2 places them.

torchvision's ``AnchorGenerator`` rounds its cell anchors to whole pixels, so an anchor of size 32
and aspect ratio 0.5 is 46 x 22 there and 45.25 x 22.63 in Detectron2: proposals differ by up to
0.75 px and a Detectron2 checkpoint does not reproduce its detections. This subclass keeps
torchvision's grid and interface and only replaces the cell anchors.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator as _TorchvisionAnchorGenerator

__all__ = ["AnchorGenerator"]


class AnchorGenerator(_TorchvisionAnchorGenerator):
    """torchvision's anchor generator with Detectron2's cell anchors (``DefaultAnchorGenerator``
    with offset 0): unrounded, ``w = sqrt(size**2 / ratio)``, ``h = ratio * w``, ordered size-major
    (all ratios of the first size, then the next size), so RPN head channels line up with a
    Detectron2 checkpoint's also when a level has several sizes.

    Args:
        sizes: anchor sizes (sqrt of the area) per feature level, e.g. ``[[32], [64], ...]``.
        aspect_ratios: height / width ratios per level.
    """

    def __init__(self, sizes: Sequence[Sequence[float]] = ((32,), (64,), (128,), (256,), (512,)),
                 aspect_ratios: Sequence[Sequence[float]] = ((0.5, 1.0, 2.0),) * 5) -> None:
        super().__init__(tuple(tuple(s) for s in sizes), tuple(tuple(a) for a in aspect_ratios))

    def generate_anchors(
        self,
        scales: Sequence[float],
        aspect_ratios: Sequence[float],
        dtype: torch.dtype = torch.float32,
        device: torch.device = torch.device("cpu"),
    ) -> torch.Tensor:
        """Zero-centred XYXY cell anchors ``(len(scales) * len(aspect_ratios), 4)``."""
        anchors = []
        for size in scales:
            area = float(size) ** 2
            for ratio in aspect_ratios:
                w = math.sqrt(area / float(ratio))
                h = float(ratio) * w
                anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
        return torch.tensor(anchors, dtype=dtype, device=device)
