"""Recipe details against the official code: MAE-Lite's crop interpolation (timm's loader with
``train_interpolation="random"``, ``RandomResizedCropAndInterpolation``), transcribed here."""

import os
import random

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms import functional as F

from conftest import REPO
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.pretrain import mae_transform
from vitdet_bench.pretrain.crop import RandomInterpolationResizedCrop

MAELITE_CONFIG = "projects/MAELite/configs/maelite_vit_tiny_400ep.py"


# --- MAE-Lite: bilinear or bicubic, drawn per image -----------------------------------------------------

# timm/data/transforms.py (0.4.x, mae-lite's): RandomResizedCropAndInterpolation with
# interpolation="random" keeps _RANDOM_INTERPOLATION = (BILINEAR, BICUBIC) and, per call, takes the
# crop's box first, then `interpolation = random.choice(self.interpolation)`.
TIMM_RANDOM_INTERPOLATION = (InterpolationMode.BILINEAR, InterpolationMode.BICUBIC)


def _image(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (96, 80, 3), dtype=np.uint8))


def test_maelite_crops_are_bilinear_or_bicubic_per_image_as_timms_random_interpolation():
    cfg = LazyConfig.load(os.path.join(REPO, MAELITE_CONFIG))
    assert cfg.dataloader.train.mapper.transform.interpolation == "random"
    cfg.dataloader.train.mapper.transform.image_size = 32
    crop, flip = instantiate(cfg.dataloader.train.mapper.transform).transforms
    assert isinstance(crop, RandomInterpolationResizedCrop) and crop.scale == (0.08, 1.0)
    assert crop.ratio == pytest.approx((3 / 4, 4 / 3))
    image = _image()
    drawn = []
    for seed in range(40):
        torch.manual_seed(seed)
        random.seed(seed)
        ours = np.asarray(crop(image))
        torch.manual_seed(seed)
        box = RandomResizedCrop.get_params(image, crop.scale, crop.ratio)
        random.seed(seed)
        interpolation = random.choice(TIMM_RANDOM_INTERPOLATION)
        expected = np.asarray(F.resized_crop(image, *box, [32, 32], interpolation))
        np.testing.assert_array_equal(ours, expected)
        other = TIMM_RANDOM_INTERPOLATION[1 - TIMM_RANDOM_INTERPOLATION.index(interpolation)]
        assert not np.array_equal(ours, np.asarray(F.resized_crop(image, *box, [32, 32], other)))
        drawn.append(interpolation)
    assert 0.3 < drawn.count(InterpolationMode.BICUBIC) / len(drawn) < 0.7
    # MAE (and everything else that builds mae_transform) keeps its bicubic crop.
    mae = LazyConfig.load(os.path.join(REPO, "projects/MAE/configs/mae_vit_b_800ep.py"))
    mae_crop = instantiate(mae.dataloader.train.mapper.transform).transforms[0]
    assert type(mae_crop) is RandomResizedCrop and mae_crop.interpolation == InterpolationMode.BICUBIC


def test_an_unknown_crop_interpolation_fails_naming_the_choices():
    assert type(mae_transform(32, interpolation="bilinear").transforms[0]) is RandomResizedCrop
    with pytest.raises(ValueError, match=r"crop interpolation must be one of \('bicubic', 'bilinear', 'random'\) "
                                         r"\('random': bilinear or bicubic drawn per image, MAE-Lite's "
                                         r"train_interpolation\), got 'nearest'"):
        mae_transform(32, interpolation="nearest")
