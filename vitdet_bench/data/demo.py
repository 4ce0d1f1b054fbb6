"""The bundled demo data: synthetic shapes on textured backgrounds, drawn deterministically by index.

Nothing is downloaded. One generator draws every demo image from ``(seed, split, index)`` alone, so
any image can be produced on its own, in any order, in any process:

* the detection splits ``train`` / ``val`` are written once into a cache directory as real JPEG
  files plus COCO instance JSON (polygon and RLE masks, a few crowd regions, occlusion between
  objects), the first time a dataset name asks for them;
* the pre-training pool and the probe set are drawn by :mod:`.demo_pool` from the same shapes and
  backgrounds (object-centric images, with random streams of their own).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np
import pycocotools.mask as mask_util

from ..utils.cache import build_directory_atomically, is_complete

__all__ = [
    "DEMO_CLASSES",
    "DEMO_VERSION",
    "DEFAULT_SPLITS",
    "SUBSETS",
    "DemoImage",
    "demo_cache_dir",
    "draw_background",
    "draw_demo_image",
    "ensure_demo_dataset",
    "fill_shape",
    "generate_split",
    "shape_polygon",
]

logger = logging.getLogger(__name__)

DEMO_CLASSES = ("circle", "square", "triangle", "star")
# Bump when the generator changes, so stale caches are not reused.
DEMO_VERSION = 3
DEFAULT_SPLITS = {"train": 2000, "val": 250}
# Subsets written next to the splits: name -> (split, first image, end). ``minival`` keeps quick
# evaluations (tests, smoke runs) quick; ``val100`` is what the benchmark's intermediate
# evaluations score (the convergence curve), the final one all of ``val``. The tuning search trains
# on ``train_search`` and selects on ``select``, the last 10% of ``train``, held out from it: never
# on ``val``, which the table reports (``select50``, the last 50, for smoke runs).
SUBSETS = {"minival": ("val", 0, 50), "val100": ("val", 0, 100),
           "train_search": ("train", 0, 1800), "select": ("train", 1800, 2000), "select50": ("train", 1950, 2000)}
# Each split draws from its own random stream: (seed, stream, index) -> image. Streams 2 and 3 are
# the pre-training pool's and the probe set's (demo_pool.py).
STREAMS = {"train": 0, "val": 1}
# Detection images below this many visible pixels are not annotated (too small to learn from).
MIN_AREA = 30


def demo_cache_dir() -> str:
    """Root for generated data: ``$VITDET_BENCH_CACHE`` or ``~/.cache/vitdet_bench``."""
    return os.path.expanduser(os.environ.get("VITDET_BENCH_CACHE", "~/.cache/vitdet_bench"))


def _stream(split: str) -> int:
    if split not in STREAMS:
        raise ValueError(f"unknown demo split {split!r}; choose from {sorted(STREAMS)}")
    return STREAMS[split]


@functools.lru_cache(maxsize=16)
def _cubic_weights(n: int) -> np.ndarray:
    """``(n, 4)`` weights of OpenCV's bicubic upsampling from 4 samples to ``n`` (a linear map, so
    resizing the 4 x 4 colour grid is two small matrix products)."""
    return cv2.resize(np.eye(4, dtype=np.float32), (4, n), interpolation=cv2.INTER_CUBIC)


@functools.lru_cache(maxsize=1)
def _noise_field() -> np.ndarray:
    """A fixed 512 x 512 x 3 standard-normal field; each image takes a random window of it."""
    return np.random.default_rng(12345).standard_normal((512, 512, 3), dtype=np.float32)


def draw_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An ``(h, w, 3)`` float32 background: low-frequency colour noise plus a random stripe or
    checker texture and pixel noise."""
    grid = rng.uniform(40, 215, size=(4, 4, 3)).astype(np.float32)
    img = np.ascontiguousarray(np.einsum("yi,ijc,xj->yxc", _cubic_weights(h), grid, _cubic_weights(w), optimize=True))
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    angle = rng.uniform(0, math.pi)
    period = rng.uniform(6, 24)
    k = np.float32(2 * math.pi / period)
    if rng.random() < 0.5:
        # Stripes: sign(sin(k (x cos a + y sin a))), by the angle-addition formula (no per-pixel sin).
        ax, ay = xx * np.float32(k * math.cos(angle)), yy * np.float32(k * math.sin(angle))
        texture = np.sign(np.sin(ax) * np.cos(ay) + np.cos(ax) * np.sin(ay))
    else:
        texture = np.sign(np.sin(k * xx)) * np.sign(np.sin(k * yy))
    img += (texture * np.float32(rng.uniform(5, 25)))[..., None]
    y0, x0 = int(rng.integers(0, 512 - h + 1)), int(rng.integers(0, 512 - w + 1))
    img += _noise_field()[y0 : y0 + h, x0 : x0 + w] * np.float32(6)
    return img


def shape_polygon(rng: np.random.Generator, cls: str, cx: float, cy: float, r: float) -> np.ndarray:
    """The ``(K, 2)`` polygon of a shape of class ``cls`` centred at ``(cx, cy)`` with radius ``r``,
    random rotation and mild random aspect."""
    rot = rng.uniform(0, 2 * math.pi)
    if cls == "circle":
        # An ellipse with mild eccentricity.
        angles = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        ry = r * rng.uniform(0.75, 1.0)
        pts = np.stack([r * np.cos(angles), ry * np.sin(angles)], 1)
    elif cls == "square":
        aspect = rng.uniform(0.7, 1.0)
        pts = np.array([[-r, -r * aspect], [r, -r * aspect], [r, r * aspect], [-r, r * aspect]])
    elif cls == "triangle":
        angles = np.array([0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.2, 0.2, 3)
        pts = np.stack([r * np.cos(angles), r * np.sin(angles)], 1)
    elif cls == "star":
        angles = np.linspace(0, 2 * math.pi, 10, endpoint=False)
        radii = np.where(np.arange(10) % 2 == 0, r, r * rng.uniform(0.38, 0.5))
        pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
    else:
        raise ValueError(f"unknown demo class {cls}")
    c, s = math.cos(rot), math.sin(rot)
    pts = pts @ np.array([[c, s], [-s, c]])
    return pts + np.array([cx, cy])


def _mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = c.reshape(-1, 2).astype(float)
        if len(c) >= 3:
            polys.append([round(v, 1) for v in (c + 0.5).reshape(-1).tolist()])
    return polys


def fill_shape(rng: np.random.Generator, img: np.ndarray, owner: np.ndarray, k: int, poly: np.ndarray,
               shade: np.ndarray | None = None) -> None:
    """Paint polygon ``poly`` onto ``img`` (float32, in place) in a random colour kept visible against
    the background under it (at least 60 levels apart in some channel), and mark its pixels as
    object ``k`` in ``owner`` (so later objects occlude earlier ones).

    Args:
        rng: the image's generator (draws the colour).
        img: ``(H, W, 3)`` float32 image.
        owner: ``(H, W)`` int8 object index per pixel.
        k: this object's index.
        poly: ``(K, 2)`` polygon in pixels.
        shade: optional ``(W, 1)`` horizontal brightness profile multiplied into the colour.
    """
    h, w = owner.shape
    # Rasterise inside the shape's box only (the fill is zero elsewhere): the polygon in 1/8-pixel
    # fixed point, moved by the box corner (whole pixels, so the same pixels as a full-image fill).
    x1, y1 = np.clip(np.floor(poly.min(0)).astype(int) - 1, 0, None)
    x2, y2 = np.minimum(np.ceil(poly.max(0)).astype(int) + 2, (w, h))
    if x2 <= x1 or y2 <= y1:  # entirely outside the image
        rng.uniform(0, 255, size=3)  # the colour draw, so later draws do not depend on it
        return
    box = (slice(y1, y2), slice(x1, x2))
    local = np.zeros((y2 - y1, x2 - x1), np.uint8)
    cv2.fillPoly(local, [np.round(poly * 8).astype(np.int32) - np.array([x1 * 8, y1 * 8], np.int32)], 1,
                 lineType=cv2.LINE_8, shift=3)
    inside = local.astype(bool)
    color = rng.uniform(0, 255, size=3).astype(np.float32)
    region = img[box]
    bg_mean = region[inside].mean(0) if inside.any() else np.full(3, 128.0, np.float32)
    if np.abs(color - bg_mean).max() < 60:
        color = 255 - bg_mean
    if shade is None:
        region[inside] = color
    else:
        region[inside] = np.clip(color[None, :] * shade[x1:x2][None, :, :].repeat(y2 - y1, 0)[inside], 0, 255)
    owner[box][inside] = k


@dataclass
class DemoImage:
    """One drawn image: ``image`` ``(H, W, 3)`` uint8 RGB, ``owner`` ``(H, W)`` int8 (the index of
    the object visible at each pixel, -1 for background; later objects occlude earlier ones), each
    object's class, and an optional crowd region."""

    image: np.ndarray
    owner: np.ndarray
    classes: list[int]
    crowd: np.ndarray | None

    @property
    def masks(self) -> list[np.ndarray]:
        """The visible ``(H, W)`` uint8 mask of each object."""
        return [(self.owner == k).astype(np.uint8) for k in range(len(self.classes))]

    @property
    def label(self) -> int:
        """Class index of the object with the largest visible area (-1 for none)."""
        areas = np.bincount(self.owner.ravel().astype(np.int64) + 1, minlength=len(self.classes) + 1)[1:]
        return self.classes[int(np.argmax(areas))] if areas.size and areas.max() > 0 else -1


def draw_demo_image(seed: int, split: str, index: int) -> DemoImage:
    """Draw image ``index`` of the detection split ``split`` ("train" or "val") for ``seed``.

    2-6 shapes of the four classes with random colour, size, rotation and aspect, drawn in order so
    later ones occlude earlier ones, on a textured, noisy background; 15% of the images also get a
    crowd region (a cluster of small dots). The result depends only on the arguments.
    """
    rng = np.random.default_rng([seed, _stream(split), index])
    h = int(rng.choice([192, 224, 256]))
    w = int(rng.choice([224, 256]))
    img = draw_background(rng, h, w)
    shade = (1 + 0.15 * np.sin(np.linspace(0, math.pi, w, dtype=np.float32)))[None, :, None]
    owner = np.full((h, w), -1, np.int8)
    classes: list[int] = []
    for k in range(int(rng.integers(2, 7))):
        cls = int(rng.integers(len(DEMO_CLASSES)))
        r = rng.uniform(12, min(h, w) * 0.28)
        cx, cy = rng.uniform(r * 0.5, w - r * 0.5), rng.uniform(r * 0.5, h - r * 0.5)
        fill_shape(rng, img, owner, k, shape_polygon(rng, DEMO_CLASSES[cls], cx, cy, r), shade[0])
        classes.append(cls)
    crowd = None
    if rng.random() < 0.15:
        crowd = np.zeros((h, w), np.uint8)
        x0, y0 = rng.uniform(0, w - 48), rng.uniform(0, h - 48)
        for _ in range(12):
            c = (int(x0 + rng.uniform(0, 48)), int(y0 + rng.uniform(0, 48)))
            cv2.circle(crowd, c, 3, 1, -1)
            cv2.circle(img, c, 3, tuple(float(v) for v in rng.uniform(0, 255, 3)), -1)
    return DemoImage(np.clip(img, 0, 255).astype(np.uint8), owner, classes, crowd)


def _annotations(drawn: DemoImage, image_id: int, ann_start: int) -> list[dict]:
    """COCO annotations of a drawn image: polygons for even objects, RLE for odd ones, the crowd."""
    h, w = drawn.image.shape[:2]
    anns = []
    ann_id = ann_start
    for k, (m, cls) in enumerate(zip(drawn.masks, drawn.classes)):
        if k % 2 == 0:
            seg: object = _mask_to_polygons(m)
            if not seg:
                continue
            # Box and area follow the polygon as COCO tools rasterize it, not the drawn mask.
            m = mask_util.decode(mask_util.merge(mask_util.frPyObjects(seg, h, w)))
        else:
            rle = mask_util.encode(np.asfortranarray(m))
            seg = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        area = int(m.sum())
        if area < MIN_AREA:
            continue
        ys, xs = np.nonzero(m)
        bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
        anns.append({"id": ann_id, "image_id": image_id, "category_id": cls + 1, "bbox": bbox,
                     "area": area, "segmentation": seg, "iscrowd": 0})
        ann_id += 1
    if drawn.crowd is not None:
        # Training ignores crowd regions; evaluation treats them as COCO does.
        ys, xs = np.nonzero(drawn.crowd)
        rle = mask_util.encode(np.asfortranarray(drawn.crowd))
        anns.append({"id": ann_id, "image_id": image_id, "category_id": 1,
                     "bbox": [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)],
                     "area": int(drawn.crowd.sum()), "iscrowd": 1,
                     "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")}})
    return anns


def generate_split(out_dir: str, split: str, num_images: int, seed: int) -> str:
    """Write ``out_dir/<split>/*.jpg`` and ``out_dir/<split>.json``; return the JSON path."""
    image_dir = os.path.join(out_dir, split)
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        image_id = i + 1
        drawn = draw_demo_image(seed, split, i)
        file_name = f"{image_id:06d}.jpg"
        path = os.path.join(image_dir, file_name)
        # The generator draws RGB; OpenCV writes BGR.
        if not cv2.imwrite(path, drawn.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise OSError(f"could not write {path}")
        h, w = drawn.image.shape[:2]
        images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        annotations.extend(_annotations(drawn, image_id, ann_start=len(annotations) + 1))
    coco = {
        "info": {"description": f"vitdet_bench demo shapes v{DEMO_VERSION}, seed {seed}, {split}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(DEMO_CLASSES)],
    }
    json_path = os.path.join(out_dir, f"{split}.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(coco, f)
    return json_path


def _write_subset(src: str, dst: str, start: int, stop: int) -> None:
    """Images ``[start, stop)`` of a COCO file and their annotations."""
    with open(src, encoding="utf-8") as f:
        coco = json.load(f)
    images = coco["images"][start:stop]
    ids = {im["id"] for im in images}
    subset = {**coco, "images": images, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}
    subset["info"] = {**coco["info"], "description": coco["info"]["description"] + f", images {start}-{stop - 1}"}
    tmp = f"{dst}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(subset, f)
    os.replace(tmp, dst)  # whole or absent, also when two processes write it at once


def _write_subsets(out: str, splits: dict[str, int]) -> None:
    """Write every :data:`SUBSETS` file of the splits present that is not there yet (a dataset
    cached before a subset was added gets it without being drawn again)."""
    for name, (split, start, stop) in SUBSETS.items():
        dst = os.path.join(out, f"{name}.json")
        if split in splits and not os.path.isfile(dst):
            _write_subset(os.path.join(out, f"{split}.json"), dst, start, min(stop, splits[split]))


def ensure_demo_dataset(root: str | None = None, seed: int = 0, splits: dict[str, int] | None = None) -> str:
    """Create the demo detection splits once (atomically) and return their directory.

    The directory holds ``train.json`` / ``val.json``, ``train/`` / ``val/`` image folders, and one
    JSON per :data:`SUBSETS` entry (a slice of a split; its files are in the split's folder).
    """
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    sizes = "-".join(f"{k}{v}" for k, v in sorted(splits.items()))
    root = root or demo_cache_dir()
    out = os.path.join(root, f"demo_shapes_v{DEMO_VERSION}_seed{seed}_{sizes}")
    if is_complete(out):
        _write_subsets(out, splits)
        return out
    logger.info("Generating the demo dataset (%s) in %s ...", sizes, out)
    with build_directory_atomically(root, out, ".demo_tmp_") as tmp:
        for split, n in splits.items():
            generate_split(tmp, split, n, seed)
        _write_subsets(tmp, splits)
    logger.info("Generated the demo dataset in %s", out)
    return out
