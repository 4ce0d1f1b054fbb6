"""Batched pre-training views (vitdet_bench/pretrain/views.py) against torchvision's per-image transforms."""

import copy
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import transforms as T

from vitdet_bench.pretrain import (
    PretrainMapper,
    beit_transform,
    deit_transform,
    mae_transform,
    moco_transforms,
    tokenizer_transform,
)
from vitdet_bench.pretrain.common import stack_images
from vitdet_bench.pretrain.views import ViewPlan, resampling_matrices


@pytest.mark.parametrize("kind", ["bilinear", "bicubic"])
@pytest.mark.parametrize("box", [(10, 5, 40, 60, 128), (0, 0, 128, 96, 64), (3, 7, 100, 33, 50), (0, 0, 128, 96, 128)])
def test_resampling_matrices_equal_antialiased_interpolate(kind, box):
    """Crop + resize as two matrix products equals F.interpolate(antialias=True) of the crop, for
    up- and down-sampling (the kernel torchvision's resized_crop runs on tensors)."""
    i, j, h, w, out = box
    img = torch.rand(2, 3, 128, 96, generator=torch.Generator().manual_seed(0)) * 255
    ref = F.interpolate(img[:, :, i:i + h, j:j + w], size=(out, out), mode=kind, antialias=True, align_corners=False)
    wy = resampling_matrices(torch.tensor([i, i]), torch.tensor([h, h]), out, 128, kind)
    wx = resampling_matrices(torch.tensor([j, j]), torch.tensor([w, w]), out, 96, kind)
    got = wy[:, None] @ img @ wx[:, None].transpose(-1, -2)
    torch.testing.assert_close(got, ref, atol=2e-3, rtol=0)


def _record(tmp_path, k: int, size: int = 96) -> dict:
    import cv2

    rng = np.random.default_rng(k)
    # Smooth colour fields plus edges: every colour op and the blur change them measurably.
    img = cv2.resize(rng.uniform(0, 255, (6, 6, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    img[size // 3: size // 2, :, :] = rng.uniform(0, 255, 3)
    path = tmp_path / f"{k}.png"
    cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8)[..., ::-1])
    return {"file_name": str(path), "label": k % 3}


def _reference(views: list, record: dict, seed: int) -> list[torch.Tensor]:
    """torchvision's own transforms on one float tensor image (values in [0, 1], as its tensor ops
    expect; thresholds rescaled), the views one after the other from the sample's seed, as the
    per-image mapper draws them: the per-image results the batch must equal."""
    from vitdet_bench.data.mapper import read_image

    image = torch.from_numpy(read_image(record)).permute(2, 0, 1).float() / 255
    outs = []
    state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        random.seed(seed)  # as the mapper seeds it (timm's draws, MAE-Lite's interpolation)
        for view in views:
            ref = copy.deepcopy(view)
            for op in ref.transforms if isinstance(ref, T.Compose) else [ref]:
                if isinstance(op, T.RandomSolarize):
                    op.threshold = op.threshold / 255
            # Bicubic overshoot clipped: the recipes' uint8 / PIL images are.
            outs.append((ref(image) * 255).clamp(0, 255))
    random.setstate(state)
    return outs


SEEDS = [1000 + 17 * k for k in range(40)]
RECIPES = {
    "mae": lambda: [mae_transform(64, min_scale=0.2)],
    "mae-lite (interpolation drawn per image)": lambda: [mae_transform(64, min_scale=0.08, interpolation="random")],
    "moco": lambda: list(moco_transforms(64, min_scale=0.08)),
    "beit": lambda: [beit_transform(64)],
    "tokenizer": lambda: [tokenizer_transform(64)],
    "deit without RandAugment": lambda: [deit_transform(64, rand_augment=None)],
}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_batched_views_equal_torchvision_per_image(recipe, tmp_path):
    """For the same seeds, the batch rendered at once equals each image through the recipe's
    torchvision transform (crop box, flip, colour factors and order, greyscale, blur, solarize)."""
    views = RECIPES[recipe]()
    mapper = PretrainMapper(views, batched=True)
    records = [_record(tmp_path, k) for k in range(len(SEEDS))]
    batch = [mapper(r, s) for r, s in zip(records, SEEDS)]
    refs = [_reference(views, r, s) for r, s in zip(records, SEEDS)]
    for v, key in enumerate(("image", "image2")[:len(views)]):
        got = stack_images(batch, key)
        assert got.shape == (len(SEEDS), 3, 64, 64)
        torch.testing.assert_close(got, torch.stack([ref[v] for ref in refs]), atol=5e-3, rtol=0)
    assert [s["label"] for s in batch] == [r["label"] for r in records]
    crop = [kind for kind, _, _ in batch[0]["image"].plan.steps].index("crop")
    modes = {s["image"].steps[crop][4] for s in batch}  # every crop's interpolation, as drawn
    assert modes == ({"bilinear", "bicubic"} if "mae-lite" in recipe else
                     {"bilinear"} if recipe == "moco" else {"bicubic"})


def test_the_seeds_exercise_every_step_of_mocos_views(tmp_path):
    """The seeds of the equality test draw every step of both MoCo v3 views, each on and off
    (so that test covers the jitter, greyscale, blur, solarize and flip paths)."""
    mapper = PretrainMapper(list(moco_transforms(64)), batched=True)
    record = _record(tmp_path, 0)
    for key in ("image", "image2"):
        draws = [mapper(record, s)[key] for s in SEEDS]
        for k, (kind, _, prob) in enumerate(draws[0].plan.steps):
            fired = sum(d.steps[k] is not None for d in draws)
            always = kind == "crop" or (kind == "blur" and prob == 1.0)
            assert fired == len(SEEDS) if always else 0 < fired < len(SEEDS), (key, kind, fired)


def test_batched_views_refuse_what_they_cannot_batch(tmp_path):
    with pytest.raises(ValueError, match="RandAugment.*per-image path"):
        PretrainMapper(deit_transform(64, rand_augment="rand-m9-mstd0.5-inc1"), batched=True)
    with pytest.raises(ValueError, match="exactly one RandomResizedCrop"):
        ViewPlan(T.RandomHorizontalFlip())
    mapper = PretrainMapper(mae_transform(32), batched=True)
    batch = [mapper(_record(tmp_path, 0, 96), 0), mapper(_record(tmp_path, 1, 80), 1)]
    with pytest.raises(ValueError, match="same-sized source images.*per-image path"):
        stack_images(batch)


def test_batched_views_are_a_function_of_the_seed(tmp_path):
    """Resume equality: a sample's view depends on its seed only, not on the batch around it."""
    mapper = PretrainMapper(list(moco_transforms(48)), batched=True)
    records = [_record(tmp_path, k) for k in range(4)]
    alone = stack_images([mapper(records[2], 7)], "image2")
    together = stack_images([mapper(r, s) for r, s in zip(records, [1, 2, 7, 3])], "image2")
    torch.testing.assert_close(together[2:3], alone)
