"""The random resized crop of the pre-training views, with the recipes' interpolation choices.

MAE, BEiT and DeiT resample every crop bicubically; MAE-Lite's loader (timm's ``create_loader`` with
``train_interpolation="random"``) draws bilinear or bicubic anew for each image, as timm's
``RandomResizedCropAndInterpolation`` does.
"""

from __future__ import annotations

import random

import torch.nn as nn
from PIL import Image
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms import functional as F

__all__ = ["CROP_INTERPOLATIONS", "RandomInterpolationResizedCrop", "random_resized_crop"]

_MODES = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}
CROP_INTERPOLATIONS = (*_MODES, "random")


class RandomInterpolationResizedCrop(RandomResizedCrop):
    """torchvision's ``RandomResizedCrop`` that resamples each crop with an interpolation drawn per
    image: timm's ``RandomResizedCropAndInterpolation(interpolation="random")``, which draws
    ``random.choice((BILINEAR, BICUBIC))`` (Python's generator) after the crop's box.

    Args:
        size: output side.
        scale: range of the crop's area over the image's.
        ratio: range of the crop's aspect ratio.
        interpolations: the modes to draw from (timm: bilinear, bicubic).
    """

    def __init__(self, size: int, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
                 interpolations: tuple[InterpolationMode, ...] = (InterpolationMode.BILINEAR,
                                                                  InterpolationMode.BICUBIC)) -> None:
        super().__init__(size, scale=scale, ratio=ratio)
        self.interpolations = tuple(interpolations)

    def forward(self, img: Image.Image) -> Image.Image:
        top, left, height, width = self.get_params(img, self.scale, self.ratio)
        interpolation = random.choice(self.interpolations)
        return F.resized_crop(img, top, left, height, width, self.size, interpolation, antialias=self.antialias)

    def __repr__(self) -> str:
        modes = "/".join(m.value for m in self.interpolations)
        return f"{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio}, interpolation={modes})"


def random_resized_crop(image_size: int, min_scale: float, interpolation: str = "bicubic") -> nn.Module:
    """``RandomResizedCrop(image_size, scale=(min_scale, 1))`` resampled with ``interpolation``:
    "bicubic", "bilinear" or "random" (MAE-Lite: bilinear or bicubic, drawn per image)."""
    if interpolation == "random":
        return RandomInterpolationResizedCrop(image_size, scale=(min_scale, 1.0))
    if interpolation not in _MODES:
        raise ValueError(f"crop interpolation must be one of {CROP_INTERPOLATIONS} ('random': bilinear or bicubic "
                         f"drawn per image, MAE-Lite's train_interpolation), got {interpolation!r}")
    return RandomResizedCrop(image_size, scale=(min_scale, 1.0), interpolation=_MODES[interpolation])
