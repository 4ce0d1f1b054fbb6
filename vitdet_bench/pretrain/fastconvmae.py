"""FastConvMAE (Alpha-VL/FastConvMAE, ``models_fastconvmae.py``): ConvMAE with complementary masks.

One argsort shuffle per image is cut into ``num_views`` (4) consecutive chunks: disjoint visible
sets of 25% that together cover every stage-3 position. The conv stages run once on the full
image, applying each CBlock's depthwise conv once per view's mask and keeping each result where
its mask is 1, so every position mixes only with neighbours of its own view; stage 3 and the
decoder run on the ``num_views`` x batch of visible sets; each view reconstructs its 75% masked
patches, so every patch is predicted ``num_views - 1`` times and the loss averages all of them.

For the same weights and masks this equals ``num_views`` ConvMAE passes, one per visible set (a
test checks it), at the cost of one conv-stage pass instead of four. The released code has pixel
targets only; the paper's mixture of reconstructors (pixel + CLIP-style "C+T") is not in it and
not here.
"""

from __future__ import annotations

import torch

from .convmae import ConvMAE, ConvMAEEncoder

__all__ = ["FastConvMAE", "complementary_views"]


def complementary_views(ids_shuffle: torch.Tensor, num_views: int) -> list[torch.Tensor]:
    """Cut a per-sample token order ``(B, L)`` into ``num_views`` disjoint chunks ``(B, L / V)``:
    view k keeps positions ``ids_shuffle[:, k L/V : (k + 1) L/V]``."""
    length = ids_shuffle.shape[1]
    if num_views < 2 or length % num_views:
        raise ValueError(f"complementary masking needs 2 or more views dividing the {length} tokens, got {num_views}")
    return list(ids_shuffle.chunk(num_views, dim=1))


class FastConvMAE(ConvMAE):
    """FastConvMAE around a :class:`ConvMAEEncoder`; ConvMAE's decoder and loss.

    Args:
        encoder: the ConvViT encoder.
        num_views: complementary visible sets (4: each keeps 25%, the mask ratio is 1 - 1 / views).
        **kwargs: :class:`ConvMAE`'s decoder and loss arguments (no ``mask_ratio``).
    """

    method = "fastconvmae"
    label = "FastConvMAE"

    def __init__(self, encoder: ConvMAEEncoder, num_views: int = 4, **kwargs) -> None:
        if "mask_ratio" in kwargs:
            raise ValueError("FastConvMAE's mask ratio is 1 - 1 / num_views; set num_views instead of mask_ratio")
        tokens = encoder.grid[0] * encoder.grid[1]
        if num_views < 2 or tokens % num_views:
            raise ValueError(f"num_views={num_views} must be at least 2 and divide the {tokens} tokens of the "
                             f"{encoder.grid[0]}x{encoder.grid[1]} grid, so the views are disjoint, equal and cover it")
        super().__init__(encoder, mask_ratio=1.0 - 1.0 / num_views, **kwargs)
        self.num_views = num_views
        self.len_keep = tokens // num_views  # exact, whatever the float rounding of the ratio

    def sample_views(self, batch: int, noise: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``num_views`` complementary visible sets from one shuffle per image."""
        return complementary_views(self.shuffle(batch, noise), self.num_views)

    def export_meta(self) -> dict:
        return {**super().export_meta(), "num_views": self.num_views}
