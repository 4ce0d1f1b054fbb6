"""Masks for masked image modelling: MAE's per-sample random masking and BEiT's block-wise masking.

Both are standalone and seedable, so tests (and other MIM methods) can reuse them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["random_masking", "BlockMaskGenerator"]


def random_masking(
    x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's per-sample random masking by argsort of uniform noise.

    Each sample keeps ``int(L * (1 - mask_ratio))`` tokens: the ones with the smallest noise.

    Args:
        x: tokens ``(N, L, D)``.
        mask_ratio: fraction of tokens removed, in [0, 1).
        noise: ``(N, L)`` to fix the mask (tests); uniform noise when ``None``.

    Returns:
        ``(x_visible (N, L_keep, D), mask (N, L) with 1 = removed, ids_restore (N, L))``;
        ``ids_restore`` un-shuffles ``cat(visible, removed)`` back to the original order.
    """
    if not 0 <= mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    n, length, dim = x.shape
    len_keep = int(length * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(n, length, device=x.device)
    elif noise.shape != (n, length):
        raise ValueError(f"noise must have shape {(n, length)}, got {tuple(noise.shape)}")
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))
    mask = torch.ones(n, length, device=x.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return x_visible, mask, ids_restore


class BlockMaskGenerator:
    """BEiT's block-wise mask: rectangles of at least ``min_num_patches`` until the quota is met.

    Each block draws a target area uniformly in ``[min_num_patches, max_num_patches]`` (capped by
    what is left of the quota) and a log-uniform aspect ratio in ``[min_aspect, 1 / min_aspect]``,
    is placed at a random position, and is accepted when it adds between 1 and the remaining quota
    of new patches (10 tries a block). Written after BEiT's ``masking_generator.py``; no maintained
    package ships it.

    Args:
        input_size: the patch grid ``(H, W)`` (an int for square).
        num_masking_patches: patches to mask (BEiT: 75 of 196, about 40%).
        min_num_patches: smallest block area (BEiT: 16).
        max_num_patches: largest block area (``None``: the whole quota).
        min_aspect: smallest aspect ratio (BEiT: 0.3).
    """

    def __init__(
        self,
        input_size: int | tuple[int, int],
        num_masking_patches: int,
        min_num_patches: int = 16,
        max_num_patches: int | None = None,
        min_aspect: float = 0.3,
    ) -> None:
        self.height, self.width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        total = self.height * self.width
        if not 0 < num_masking_patches <= total:
            raise ValueError(f"num_masking_patches must be in [1, {total}], got {num_masking_patches}")
        if not 0 < min_num_patches <= num_masking_patches:
            raise ValueError(f"min_num_patches must be in [1, num_masking_patches={num_masking_patches}], got "
                             f"{min_num_patches}")
        if not 0 < min_aspect <= 1:
            raise ValueError(f"min_aspect must be in (0, 1], got {min_aspect}")
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = num_masking_patches if max_num_patches is None else max_num_patches
        self.log_aspect_ratio = (math.log(min_aspect), math.log(1 / min_aspect))

    def __repr__(self) -> str:
        return (f"BlockMaskGenerator({self.height}x{self.width}, masked={self.num_masking_patches}, "
                f"block area >= {self.min_num_patches}, aspect {math.exp(self.log_aspect_ratio[0]):.2f}-"
                f"{math.exp(self.log_aspect_ratio[1]):.2f})")

    def _mask_block(self, rng: np.random.Generator, mask: np.ndarray, max_mask_patches: int,
                    blocks: list) -> int:
        delta = 0
        for _ in range(10):
            # Near the end of the quota max_mask_patches < min_num_patches; BEiT still draws
            # between the two (the acceptance test below keeps the quota).
            lo, hi = sorted((self.min_num_patches, max_mask_patches))
            target_area = rng.uniform(lo, hi)
            aspect = math.exp(rng.uniform(*self.log_aspect_ratio))
            h = int(round(math.sqrt(target_area * aspect)))
            w = int(round(math.sqrt(target_area / aspect)))
            if w < self.width and h < self.height:
                top = int(rng.integers(0, self.height - h + 1))
                left = int(rng.integers(0, self.width - w + 1))
                num_masked = int(mask[top: top + h, left: left + w].sum())
                if 0 < h * w - num_masked <= max_mask_patches:
                    block = mask[top: top + h, left: left + w]
                    delta = int((block == 0).sum())
                    block[:] = 1
                    blocks.append((top, left, h, w))
                if delta > 0:
                    break
        return delta

    def __call__(self, rng: np.random.Generator | None = None, return_blocks: bool = False):
        """A ``(H, W)`` uint8 mask, 1 = masked; ``rng`` makes it reproducible. With
        ``return_blocks`` also the placed blocks as ``(top, left, height, width)``."""
        rng = rng if rng is not None else np.random.default_rng()
        mask = np.zeros((self.height, self.width), dtype=np.uint8)
        blocks: list[tuple[int, int, int, int]] = []
        count = 0
        while count < self.num_masking_patches:
            max_mask_patches = min(self.num_masking_patches - count, self.max_num_patches)
            delta = self._mask_block(rng, mask, max_mask_patches, blocks)
            if delta == 0:
                break
            count += delta
        return (mask, blocks) if return_blocks else mask
