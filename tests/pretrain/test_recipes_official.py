"""Recipe details against the official code: MAE-Lite's crop interpolation (timm's loader with
``train_interpolation="random"``, ``RandomResizedCropAndInterpolation``) and the end of DeiT's
schedule (timm 0.3.2's ``CosineLRScheduler`` as DeiT's ``main.py`` builds and steps it, and timm's
``train.py`` with its cool-down epochs), each transcribed here."""

import math
import os
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image
from timm.scheduler import CosineLRScheduler
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms import functional as F

from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.pretrain import mae_transform
from vitdet_bench.pretrain.crop import RandomInterpolationResizedCrop
from vitdet_bench.solver import LRMultiplier, WarmupParamScheduler, cosine_schedule

from helpers import REPO

MAELITE_CONFIG = "projects/MAELite/configs/maelite_vit_tiny_400ep.py"
DEIT_CONFIG = "projects/Supervised/configs/deit_vit_b_300ep.py"


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


# --- DeiT: the schedule's end ----------------------------------------------------------------------------

def timm032_cosine_lr(t: int, base: float, t_initial: int, lr_min: float, warmup_lr_init: float, warmup_t: int,
                      decay_rate: float = 0.1, cycle_limit: int = 1) -> float:
    """timm 0.3.2 CosineLRScheduler._get_lr (t_mul 1, warmup_prefix False, t_in_epochs), transcribed."""
    if t < warmup_t:
        return warmup_lr_init + t * (base - warmup_lr_init) / warmup_t
    i = t // t_initial
    t_i = t_initial
    t_curr = t - t_initial * i
    gamma = decay_rate ** i
    lr_min_i, lr_max = lr_min * gamma, base * gamma
    if cycle_limit == 0 or (cycle_limit > 0 and i < cycle_limit):
        return lr_min_i + 0.5 * (lr_max - lr_min_i) * (1 + math.cos(math.pi * t_curr / t_i))
    return lr_min


# DeiT's main.py defaults: --lr 5e-4 scaled by batch / 512, --min-lr 1e-5, --warmup-lr 1e-6,
# --warmup-epochs 5, --epochs 300, --cooldown-epochs 10, --decay-rate 0.1.
BASE, MIN_LR, WARMUP_LR, WARMUP, EPOCHS, COOLDOWN = 5e-4 * 1024 / 512, 1e-5, 1e-6, 5, 300, 10


def deit_lr(t: int) -> float:
    return timm032_cosine_lr(t, BASE, EPOCHS, MIN_LR, WARMUP_LR, WARMUP)


def deit_main_epoch_lrs() -> list[float]:
    """The lr each epoch of DeiT's main.py trains at: the scheduler's constructor sets warmup_lr,
    then `lr_scheduler.step(epoch)` after each epoch of `range(args.start_epoch, args.epochs)`; the
    epoch count create_scheduler returns (epochs + cooldown_epochs) is discarded."""
    return [WARMUP_LR] + [deit_lr(e) for e in range(EPOCHS - 1)]


def timm_train_epoch_lrs() -> list[float]:
    """timm's train.py: `lr_scheduler, num_epochs = create_scheduler(args, optimizer)` (num_epochs =
    t_initial + cooldown_epochs) and `lr_scheduler.step(epoch + 1)`: epoch e trains at _get_lr(e)."""
    return [deit_lr(e) for e in range(EPOCHS + COOLDOWN)]


def _iteration_lrs(cfg, iters_per_epoch: int, epochs: int, cooldown: int = 0) -> list[float]:
    cfg = LazyConfig.apply_overrides(cfg, [f"train.max_iter={epochs * iters_per_epoch}",
                                           f"lr_multiplier.warmup_iters={WARMUP * iters_per_epoch}",
                                           f"lr_multiplier.cooldown_iters={cooldown * iters_per_epoch}"])
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=cfg.optimizer.lr)
    sched = LRMultiplier(opt, instantiate(cfg.lr_multiplier), cfg.train.max_iter)
    out = []
    for _ in range(cfg.train.max_iter):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_the_transcription_is_timms_cosine_scheduler():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=BASE)
    timm = CosineLRScheduler(opt, t_initial=EPOCHS, lr_min=MIN_LR, warmup_lr_init=WARMUP_LR, warmup_t=WARMUP,
                             cycle_limit=1, t_in_epochs=True)
    for t in range(EPOCHS + COOLDOWN):
        assert deit_lr(t) == pytest.approx(timm._get_lr(t)[0], rel=1e-12), t


def test_deit_schedule_ends_at_min_lr_after_300_epochs_as_deits_main_py():
    cfg = LazyConfig.load(os.path.join(REPO, DEIT_CONFIG))
    assert cfg.train.max_iter == round(EPOCHS * 1281167 / 1024) and cfg.lr_multiplier.cooldown_iters == 0
    assert cfg.optimizer.lr == BASE and cfg.optimizer.lr * cfg.lr_multiplier.warmup_factor == pytest.approx(WARMUP_LR)
    ipe = 4
    ours = _iteration_lrs(cfg, ipe, EPOCHS)
    deit = deit_main_epoch_lrs()
    # Every epoch boundary after the warm-up is timm's cosine at that epoch, exactly.
    for e in range(WARMUP, EPOCHS):
        assert ours[e * ipe] == pytest.approx(deit_lr(e), rel=1e-9), e
    # The end: the floor is --min-lr (it was 0 before), reached at the last iteration; DeiT's last
    # epoch trains at _get_lr(298) (one epoch behind: it steps after each epoch), 1.1 % above it.
    assert min(ours) >= WARMUP_LR and min(ours[WARMUP * ipe:]) > MIN_LR
    assert ours[-1] == pytest.approx(MIN_LR, rel=1e-3) and deit[-1] == pytest.approx(MIN_LR, rel=0.011)
    last = ours[-ipe:]
    assert deit_lr(EPOCHS - 1) >= max(last) and min(last) > MIN_LR
    # The paper-scale file at its own length: the same end.
    cfg = LazyConfig.load(os.path.join(REPO, DEIT_CONFIG))
    full = instantiate(cfg.lr_multiplier)
    assert BASE * full((cfg.train.max_iter - 1) / cfg.train.max_iter) == pytest.approx(MIN_LR, rel=1e-6)
    assert BASE * full(0.5) == pytest.approx(deit_lr(150), rel=1e-9)


def test_a_cooldown_holds_min_lr_for_its_epochs_as_timms_train_py():
    cfg = LazyConfig.load(os.path.join(REPO, DEIT_CONFIG))
    ipe = 3
    ours = _iteration_lrs(cfg, ipe, EPOCHS + COOLDOWN, cooldown=COOLDOWN)
    timm = timm_train_epoch_lrs()
    assert len(ours) == len(timm) * ipe
    for e, lr in enumerate(timm):
        # The warm-up ramps to the cosine's value at epoch 5 (timm's to the base lr, 0.07 % higher).
        assert ours[e * ipe] == pytest.approx(lr, rel=1e-9 if e >= WARMUP else 1e-3), e
    assert all(lr == pytest.approx(MIN_LR, rel=1e-12) for lr in ours[EPOCHS * ipe:])  # the 10 cool-down epochs
    assert ours[EPOCHS * ipe - 1] > MIN_LR


def test_bad_cooldowns_fail_with_their_range():
    for bad in (-1, 20, 25):
        with pytest.raises(ValueError, match=rf"cooldown_iters must be in \[0, max_iter=20\) so that the schedule "
                                             rf"runs before it, got {bad}"):
            WarmupParamScheduler(cosine_schedule(), warmup_iters=2, max_iter=20, cooldown_iters=bad)
