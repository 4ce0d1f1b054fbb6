"""The bundled demo dataset: synthetic shapes on textured backgrounds, written as COCO files.

Nothing is downloaded: the generator draws real JPEG files plus COCO instance JSON (polygons and
RLE masks, a few crowd regions, occlusion between objects) deterministically from a seed, into a
cache directory, the first time the dataset is asked for.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile

import cv2
import numpy as np
import pycocotools.mask as mask_util

__all__ = ["DEMO_CLASSES", "DEMO_VERSION", "demo_cache_dir", "ensure_demo_dataset", "generate_split"]

logger = logging.getLogger(__name__)

DEMO_CLASSES = ("circle", "square", "triangle", "star")
# Bump when the generator changes, so stale caches are not reused.
DEMO_VERSION = 2
DEFAULT_SPLITS = {"train": 96, "val": 24}


def demo_cache_dir() -> str:
    """Root for generated data: ``$VITDET_BENCH_CACHE`` or ``~/.cache/vitdet_bench``."""
    return os.path.expanduser(os.environ.get("VITDET_BENCH_CACHE", "~/.cache/vitdet_bench"))


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Low-frequency colour noise plus a random stripe or checker texture."""
    grid = rng.uniform(40, 215, size=(4, 4, 3)).astype(np.float32)
    img = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    period = rng.uniform(6, 24)
    phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
    if rng.random() < 0.5:
        texture = np.sign(np.sin(2 * math.pi * phase))
    else:
        texture = np.sign(np.sin(2 * math.pi * xx / period)) * np.sign(np.sin(2 * math.pi * yy / period))
    img += texture[..., None] * rng.uniform(5, 25)
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(img, 0, 255)


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


def _draw_image(rng: np.random.Generator, image_id: int, ann_start: int) -> tuple:
    h = int(rng.choice([192, 224, 256]))
    w = int(rng.choice([224, 256]))
    img = _background(rng, h, w)
    num = int(rng.integers(2, 7))
    masks, classes = [], []
    for _ in range(num):
        cls = int(rng.integers(len(DEMO_CLASSES)))
        r = rng.uniform(12, min(h, w) * 0.28)
        cx, cy = rng.uniform(r * 0.5, w - r * 0.5), rng.uniform(r * 0.5, h - r * 0.5)
        poly = _shape_polygon(rng, DEMO_CLASSES[cls], cx, cy, r)
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [np.round(poly * 8).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=3)
        color = rng.uniform(0, 255, size=3)
        # Keep objects visible against the local background.
        bg_mean = img[m > 0].mean(0) if m.any() else np.full(3, 128.0)
        if np.abs(color - bg_mean).max() < 60:
            color = 255 - bg_mean
        shade = 1 + 0.15 * np.sin(np.linspace(0, math.pi, w))[None, :, None]
        img = np.where(m[..., None] > 0, np.clip(color * shade, 0, 255), img)
        # Later objects occlude earlier ones.
        masks = [mk & (1 - m) for mk in masks]
        masks.append(m)
        classes.append(cls)

    anns = []
    ann_id = ann_start
    for k, (m, cls) in enumerate(zip(masks, classes)):
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
        if area < 30:
            continue
        ys, xs = np.nonzero(m)
        bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
        anns.append(
            {"id": ann_id, "image_id": image_id, "category_id": cls + 1, "bbox": bbox,
             "area": area, "segmentation": seg, "iscrowd": 0}
        )
        ann_id += 1

    # A crowd region (a cluster of small dots annotated as one RLE) in some images: training
    # ignores it, evaluation treats it as COCO does.
    if rng.random() < 0.15:
        crowd = np.zeros((h, w), np.uint8)
        x0, y0 = rng.uniform(0, w - 48), rng.uniform(0, h - 48)
        for _ in range(12):
            c = (int(x0 + rng.uniform(0, 48)), int(y0 + rng.uniform(0, 48)))
            cv2.circle(crowd, c, 3, 1, -1)
            cv2.circle(img, c, 3, tuple(float(v) for v in rng.uniform(0, 255, 3)), -1)
        ys, xs = np.nonzero(crowd)
        rle = mask_util.encode(np.asfortranarray(crowd))
        anns.append(
            {"id": ann_id, "image_id": image_id, "category_id": 1,
             "bbox": [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)],
             "area": int(crowd.sum()), "iscrowd": 1,
             "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")}}
        )
    return np.clip(img, 0, 255).astype(np.uint8), anns


def generate_split(out_dir: str, split: str, num_images: int, seed: int) -> str:
    """Write ``out_dir/<split>/*.jpg`` and ``out_dir/<split>.json``; return the JSON path."""
    rng = np.random.default_rng([seed, {"train": 0, "val": 1}.get(split, 2)])
    image_dir = os.path.join(out_dir, split)
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        image_id = i + 1
        img, anns = _draw_image(rng, image_id, ann_start=len(annotations) + 1)
        file_name = f"{image_id:06d}.jpg"
        # The generator draws RGB; OpenCV writes BGR.
        if not cv2.imwrite(os.path.join(image_dir, file_name), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise OSError(f"could not write {os.path.join(image_dir, file_name)}")
        images.append({"id": image_id, "file_name": file_name, "height": img.shape[0], "width": img.shape[1]})
        annotations.extend(anns)
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


def ensure_demo_dataset(root: str | None = None, seed: int = 0, splits: dict[str, int] | None = None) -> str:
    """Create the demo dataset once (atomically) and return its directory.

    The directory holds ``train.json`` / ``val.json`` and ``train/`` / ``val/`` image folders.
    """
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    sizes = "-".join(f"{k}{v}" for k, v in sorted(splits.items()))
    root = root or demo_cache_dir()
    out = os.path.join(root, f"demo_shapes_v{DEMO_VERSION}_seed{seed}_{sizes}")
    if os.path.isfile(os.path.join(out, "DONE")):
        return out
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".demo_tmp_", dir=root)
    try:
        for split, n in splits.items():
            generate_split(tmp, split, n, seed)
        open(os.path.join(tmp, "DONE"), "w").close()
        try:
            os.rename(tmp, out)
        except OSError:
            # Another process finished first; its copy is identical (same seed).
            if not os.path.isfile(os.path.join(out, "DONE")):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Generated the demo dataset in %s", out)
    return out
