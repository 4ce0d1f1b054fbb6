"""The bundled demo data: synthetic shapes on textured backgrounds, drawn deterministically by index.

Nothing is downloaded. One generator draws every demo image from ``(seed, split, index)`` alone, so
any image can be produced on its own, in any order, in any process:

* the detection splits ``train`` / ``val`` are written once into a cache directory as real JPEG
  files plus COCO instance JSON (polygon and RLE masks, a few crowd regions, occlusion between
  objects), the first time a dataset name asks for them;
* the pre-training pool (:func:`ensure_demo_pool`, 20,000 images) is drawn with a random stream of
  its own, so it shares no image with the detection splits, and cached as JPEG files with each
  image's label (the category of its largest visible object: the supervised initialization's
  target); no annotations are made. Reading a cached JPEG costs a fraction of drawing it again,
  and every pre-training method reads the pool several times.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np
import pycocotools.mask as mask_util

__all__ = [
    "DEMO_CLASSES",
    "DEMO_VERSION",
    "DEFAULT_SPLITS",
    "POOL_SIZE",
    "SUBSETS",
    "DemoImage",
    "demo_cache_dir",
    "draw_demo_image",
    "ensure_demo_dataset",
    "ensure_demo_pool",
    "generate_split",
    "pool_file_name",
]

logger = logging.getLogger(__name__)

DEMO_CLASSES = ("circle", "square", "triangle", "star")
# Bump when the generator changes, so stale caches are not reused.
DEMO_VERSION = 3
DEFAULT_SPLITS = {"train": 2000, "val": 250}
# Subsets written next to the splits: name -> (split, first N images). ``minival`` keeps quick
# evaluations (tests, smoke runs) quick; the benchmark evaluates on all of ``val``.
SUBSETS = {"minival": ("val", 50)}
POOL_SIZE = 20000
# Each split draws from its own random stream: (seed, stream, index) -> image.
STREAMS = {"train": 0, "val": 1, "pool": 2}
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


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Low-frequency colour noise plus a random stripe or checker texture and pixel noise, float32."""
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


def _shape_polygon(rng: np.random.Generator, cls: str, cx: float, cy: float, r: float) -> np.ndarray:
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
    """Draw image ``index`` of ``split`` ("train", "val" or "pool") for ``seed``.

    2-6 shapes of the four classes with random colour, size, rotation and aspect, drawn in order so
    later ones occlude earlier ones, on a textured, noisy background; 15% of the images also get a
    crowd region (a cluster of small dots). The result depends only on the arguments.
    """
    rng = np.random.default_rng([seed, _stream(split), index])
    h = int(rng.choice([192, 224, 256]))
    w = int(rng.choice([224, 256]))
    img = _background(rng, h, w)
    shade = (1 + 0.15 * np.sin(np.linspace(0, math.pi, w, dtype=np.float32)))[None, :, None]
    owner = np.full((h, w), -1, np.int8)
    classes: list[int] = []
    for k in range(int(rng.integers(2, 7))):
        cls = int(rng.integers(len(DEMO_CLASSES)))
        r = rng.uniform(12, min(h, w) * 0.28)
        cx, cy = rng.uniform(r * 0.5, w - r * 0.5), rng.uniform(r * 0.5, h - r * 0.5)
        poly = _shape_polygon(rng, DEMO_CLASSES[cls], cx, cy, r)
        # Rasterise inside the shape's box only (the fill is zero elsewhere): the polygon in 1/8-pixel
        # fixed point, moved by the box corner (whole pixels, so the same pixels as a full-image fill).
        x1, y1 = np.clip(np.floor(poly.min(0)).astype(int) - 1, 0, None)
        x2, y2 = np.minimum(np.ceil(poly.max(0)).astype(int) + 2, (w, h))
        box = (slice(y1, y2), slice(x1, x2))
        local = np.zeros((y2 - y1, x2 - x1), np.uint8)
        cv2.fillPoly(local, [np.round(poly * 8).astype(np.int32) - np.array([x1 * 8, y1 * 8], np.int32)], 1,
                     lineType=cv2.LINE_8, shift=3)
        inside = local.astype(bool)
        color = rng.uniform(0, 255, size=3).astype(np.float32)
        region = img[box]
        # Keep objects visible against the local background.
        bg_mean = region[inside].mean(0) if inside.any() else np.full(3, 128.0, np.float32)
        if np.abs(color - bg_mean).max() < 60:
            color = 255 - bg_mean
        region[inside] = np.clip(color[None, :] * shade[0, x1:x2][None, :, :].repeat(y2 - y1, 0)[inside], 0, 255)
        owner[box][inside] = k  # later objects occlude earlier ones
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
    if split == "pool":
        raise ValueError("the pre-training pool has no annotations: use ensure_demo_pool, not generate_split")
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


def _write_subset(src: str, dst: str, num_images: int) -> None:
    """The first ``num_images`` images of a COCO file and their annotations."""
    with open(src, encoding="utf-8") as f:
        coco = json.load(f)
    images = coco["images"][:num_images]
    ids = {im["id"] for im in images}
    subset = {**coco, "images": images, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}
    subset["info"] = {**coco["info"], "description": coco["info"]["description"] + f", first {len(images)} images"}
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(subset, f)


@contextlib.contextmanager
def _built_atomically(root: str, out: str, prefix: str) -> Iterator[str]:
    """Build a cache directory in a temporary folder under ``root`` (yielded), then publish it as
    ``out`` with a ``DONE`` marker in one rename, so a reader never sees half a dataset and an
    interrupted build leaves nothing behind. If another process published ``out`` first, its copy
    is identical (same seed) and this one is dropped."""
    tmp = tempfile.mkdtemp(prefix=prefix, dir=root)
    try:
        yield tmp
        open(os.path.join(tmp, "DONE"), "w").close()
        try:
            os.rename(tmp, out)
        except OSError:
            if not os.path.isfile(os.path.join(out, "DONE")):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_demo_dataset(root: str | None = None, seed: int = 0, splits: dict[str, int] | None = None) -> str:
    """Create the demo detection splits once (atomically) and return their directory.

    The directory holds ``train.json`` / ``val.json`` and ``train/`` / ``val/`` image folders, and
    ``minival.json``: the first 50 ``val`` images (their files are in ``val/``).
    """
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    sizes = "-".join(f"{k}{v}" for k, v in sorted(splits.items()))
    root = root or demo_cache_dir()
    out = os.path.join(root, f"demo_shapes_v{DEMO_VERSION}_seed{seed}_{sizes}")
    if os.path.isfile(os.path.join(out, "DONE")):
        return out
    os.makedirs(root, exist_ok=True)
    logger.info("Generating the demo dataset (%s) in %s ...", sizes, out)
    with _built_atomically(root, out, ".demo_tmp_") as tmp:
        for split, n in splits.items():
            generate_split(tmp, split, n, seed)
        for name, (split, n) in SUBSETS.items():
            if split in splits:
                _write_subset(os.path.join(tmp, f"{split}.json"), os.path.join(tmp, f"{name}.json"), n)
    logger.info("Generated the demo dataset in %s", out)
    return out


def _write_pool_chunk(args: tuple[str, int, int, int]) -> list[int]:
    """Draw pool images ``[start, stop)`` as JPEGs into ``out_dir``; return their labels."""
    out_dir, seed, start, stop = args
    labels = []
    for i in range(start, stop):
        drawn = draw_demo_image(seed, "pool", i)
        path = os.path.join(out_dir, pool_file_name(i))
        if not cv2.imwrite(path, drawn.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise OSError(f"could not write {path}")
        labels.append(drawn.label)
    return labels


def pool_file_name(index: int) -> str:
    """Where pool image ``index`` lives inside the pool directory (1,000 files a folder)."""
    return os.path.join(f"{index // 1000:03d}", f"{index:06d}.jpg")


def ensure_demo_pool(size: int = POOL_SIZE, seed: int = 0, root: str | None = None, workers: int | None = None) -> str:
    """Draw the pre-training pool once into the cache (atomically, in parallel) and return its directory.

    The directory holds ``NNN/IIIIII.jpg`` for image ``i`` and ``labels.json`` (each image's
    largest visible object's class). Image ``i`` is the same for every pool size: a smaller pool is
    a prefix of a larger one.

    Args:
        size: number of images.
        seed: the generator seed.
        root: cache root (default :func:`demo_cache_dir`).
        workers: drawing processes (default: the CPU count, at most 8).
    """
    if size <= 0:
        raise ValueError(f"the demo pool size must be positive, got {size}")
    root = root or demo_cache_dir()
    out = os.path.join(root, f"demo_pool_v{DEMO_VERSION}_seed{seed}_{size}")
    if os.path.isfile(os.path.join(out, "DONE")):
        return out
    os.makedirs(root, exist_ok=True)
    logger.info("Drawing the demo pre-training pool (%d images) into %s ...", size, out)
    with _built_atomically(root, out, ".pool_tmp_") as tmp:
        for folder in range(-(-size // 1000)):
            os.makedirs(os.path.join(tmp, f"{folder:03d}"))
        chunks = [(tmp, seed, a, min(a + 500, size)) for a in range(0, size, 500)]
        workers = min(workers or os.cpu_count() or 1, 8, len(chunks))
        if workers > 1:
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                parts = pool.map(_write_pool_chunk, chunks)
        else:
            parts = [_write_pool_chunk(c) for c in chunks]
        with open(os.path.join(tmp, "labels.json"), "w", encoding="utf-8") as f:
            json.dump({"classes": list(DEMO_CLASSES), "labels": [x for part in parts for x in part]}, f)
    logger.info("Drew the demo pool in %s", out)
    return out
