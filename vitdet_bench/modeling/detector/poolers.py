"""RoIAlign over named pyramid levels with scales fixed by the level names, optionally aligned."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.poolers import initLevelMapper

__all__ = ["LevelRoIAlign"]


class LevelRoIAlign(MultiScaleRoIAlign):
    """torchvision's ``MultiScaleRoIAlign`` with each level's scale taken from its name (``pK`` is
    stride ``2**K``).

    torchvision infers the scales from the first batch it sees (feature size over the largest
    *unpadded* image) and caches them. Under large-scale jitter a small first image padded to the
    square makes that guess wrong for the whole run, and the guess depends on which batch came
    first (so a resumed run would pool differently). Fixing the scales up front avoids both.

    Args:
        featmap_names: pyramid levels to pool from, named ``p2`` ... ``p5``.
        output_size: pooled size.
        sampling_ratio: RoIAlign sampling points per bin (0: adaptive, as Detectron2).
        canonical_scale: box size mapped to ``canonical_level`` (FPN paper: 224 -> level 4).
        canonical_level: see ``canonical_scale``.
        aligned: half-pixel-corrected RoIAlign (Detectron2's ``ROIAlignV2``, used by ViTDet);
            torchvision's ``MultiScaleRoIAlign`` always uses ``aligned=False``.
    """

    def __init__(
        self,
        featmap_names: Sequence[str],
        output_size: int,
        sampling_ratio: int = 0,
        canonical_scale: int = 224,
        canonical_level: int = 4,
        aligned: bool = True,
    ) -> None:
        super().__init__(list(featmap_names), output_size, sampling_ratio,
                         canonical_scale=canonical_scale, canonical_level=canonical_level)
        levels = []
        for name in featmap_names:
            if not (name.startswith("p") and name[1:].isdigit()):
                raise ValueError(f"LevelRoIAlign needs level names 'p<k>' (stride 2**k), got '{name}'")
            levels.append(int(name[1:]))
        if levels != list(range(levels[0], levels[0] + len(levels))):
            raise ValueError(f"LevelRoIAlign needs consecutive levels, got {list(featmap_names)}")
        self.scales = [math.pow(2.0, -k) for k in levels]
        self.map_levels = initLevelMapper(levels[0], levels[-1], canonical_scale=canonical_scale,
                                          canonical_level=canonical_level)
        self.aligned = aligned

    def forward(self, x: dict[str, torch.Tensor], boxes: list[torch.Tensor],
                image_shapes: list[tuple[int, int]]) -> torch.Tensor:
        """Pool each box from its FPN level (torchvision's level mapper) with ``roi_align``."""
        feats = [x[name] for name in self.featmap_names]
        rois = torch.cat([torch.cat([b.new_full((len(b), 1), i), b], dim=1) for i, b in enumerate(boxes)])
        if len(feats) == 1:
            return roi_align(feats[0], rois, self.output_size, self.scales[0], self.sampling_ratio, self.aligned)
        levels = self.map_levels(boxes)
        result = feats[0].new_zeros((len(rois), feats[0].shape[1], *self.output_size))
        for level, (feat, scale) in enumerate(zip(feats, self.scales)):
            idx = torch.where(levels == level)[0]
            pooled = roi_align(feat, rois[idx], self.output_size, scale, self.sampling_ratio, self.aligned)
            # Under autocast levels can differ in dtype; copy into the result's.
            result[idx] = pooled.to(result.dtype)
        return result
