"""RoIAlign over named pyramid levels with scales fixed by the level names."""

from __future__ import annotations

import math
from typing import Sequence

from torchvision.ops import MultiScaleRoIAlign
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
    """

    def __init__(
        self,
        featmap_names: Sequence[str],
        output_size: int,
        sampling_ratio: int = 0,
        canonical_scale: int = 224,
        canonical_level: int = 4,
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
