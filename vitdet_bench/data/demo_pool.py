"""The demo's pre-training pool and probe set: object-centric images, as ImageNet is to COCO.

The detection splits (:mod:`.demo`) are cluttered scenes of 2-6 overlapping shapes. Pre-training
data in the paper is different in kind: ImageNet's images are object-centric, one labelled object
dominating each image. The pool is drawn that way from the same shapes and textured backgrounds:
one dominant shape of the image's class (radius 22-40% of the side, near the centre), 0-3 smaller
distractor shapes of any class (6-13%), each in front of or behind it (occlusion), on a
background of the detection images' kind. The label is the dominant shape's class, which is also
the class with the largest visible area. No pool or probe image is a detection image (each set has
a random stream of its own).

Two sets are drawn, each cached once as a memory-mapped ``uint8`` array:

* the pool (:func:`ensure_demo_pool`): what the four methods pre-train on (the supervised one reads
  its labels);
* the probe set (:func:`ensure_demo_probe_set`): labelled images that no method trained on, for the
  k-NN / linear probes of every encoder (first part: the probe's training images, rest: its test).

Stored as ``images.npy`` ``(N, S, S, 3)`` RGB, ``labels.npy`` ``(N,)`` and ``meta.json``; a
pre-training step reads rows of the array (no decoding), and image ``i`` is the same for every set
size, so a smaller set is a prefix of a larger one.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from ..utils.cache import build_directory_atomically, is_complete
from .demo import DEMO_CLASSES, DemoImage, demo_cache_dir, draw_background, fill_shape, shape_polygon

__all__ = [
    "POOL_VERSION",
    "IMAGE_SETS",
    "draw_pool_image",
    "ensure_demo_pool",
    "ensure_demo_probe_set",
    "ensure_image_set",
    "read_image_set",
]

logger = logging.getLogger(__name__)

# Bump when the drawing changes, so stale caches are not reused.
POOL_VERSION = 1
# Name -> random stream (the detection splits use 0 and 1).
IMAGE_SETS = {"pool": 2, "probe": 3}
IMAGES_FILE, LABELS_FILE, META_FILE = "images.npy", "labels.npy", "meta.json"


def draw_pool_image(seed: int, image_set: str, index: int, size: int = 128) -> DemoImage:
    """Draw image ``index`` of ``image_set`` ("pool" or "probe"): a ``size`` x ``size`` object-centric image.

    The dominant shape is object 0 in ``owner`` and ``classes``; the image's label is ``classes[0]``.
    The result depends only on the arguments.
    """
    if image_set not in IMAGE_SETS:
        raise ValueError(f"unknown demo image set {image_set!r}; choose from {sorted(IMAGE_SETS)}")
    rng = np.random.default_rng([seed, IMAGE_SETS[image_set], index])
    img = draw_background(rng, size, size)
    owner = np.full((size, size), -1, np.int8)
    specs = []
    main_cls = int(rng.integers(len(DEMO_CLASSES)))
    r = rng.uniform(0.22, 0.40) * size
    specs.append((main_cls, size / 2 + rng.uniform(-0.12, 0.12) * size, size / 2 + rng.uniform(-0.12, 0.12) * size, r))
    for _ in range(int(rng.integers(0, 4))):
        specs.append((int(rng.integers(len(DEMO_CLASSES))), rng.uniform(0, size), rng.uniform(0, size),
                      rng.uniform(0.06, 0.13) * size))
    # Paint in a random order: a distractor painted after the dominant shape occludes it.
    for k in rng.permutation(len(specs)):
        cls, cx, cy, radius = specs[k]
        fill_shape(rng, img, owner, int(k), shape_polygon(rng, DEMO_CLASSES[cls], cx, cy, radius))
    return DemoImage(np.clip(img, 0, 255).astype(np.uint8), owner, [s[0] for s in specs], None)


def _draw_chunk(args: tuple[str, str, int, int, int, int]) -> list[int]:
    """Draw images ``[start, stop)`` into the set's array file (opened for writing); their labels."""
    path, image_set, seed, size, start, stop = args
    images = np.load(path, mmap_mode="r+")
    labels = []
    for i in range(start, stop):
        drawn = draw_pool_image(seed, image_set, i, size)
        images[i] = drawn.image
        labels.append(drawn.classes[0])
    images.flush()
    return labels


def ensure_image_set(image_set: str, num_images: int, seed: int = 0, size: int = 128, root: str | None = None,
                     workers: int | None = None) -> str:
    """Draw an image set once into the cache (atomically, in parallel) and return its directory.

    Args:
        image_set: "pool" or "probe".
        num_images: number of images.
        seed: the generator seed.
        size: image side in pixels.
        root: cache root (default :func:`~.demo.demo_cache_dir`).
        workers: drawing processes (default: the CPU count, at most 8).
    """
    if image_set not in IMAGE_SETS:
        raise ValueError(f"unknown demo image set {image_set!r}; choose from {sorted(IMAGE_SETS)}")
    if num_images <= 0 or size <= 0:
        raise ValueError(f"a demo image set needs a positive size, got {num_images} images of {size} px")
    root = root or demo_cache_dir()
    out = os.path.join(root, f"demo_{image_set}_v{POOL_VERSION}_seed{seed}_{num_images}x{size}px")
    if is_complete(out):
        return out
    logger.info("Drawing the demo %s (%d images of %d px) into %s ...", image_set, num_images, size, out)
    with build_directory_atomically(root, out, f".{image_set}_tmp_") as tmp:
        path = os.path.join(tmp, IMAGES_FILE)
        np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(num_images, size, size, 3)).flush()
        step = 250
        chunks = [(path, image_set, seed, size, a, min(a + step, num_images)) for a in range(0, num_images, step)]
        workers = min(workers or os.cpu_count() or 1, 8, len(chunks))
        if workers > 1:
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                parts = pool.map(_draw_chunk, chunks)
        else:
            parts = [_draw_chunk(c) for c in chunks]
        labels = np.array([x for part in parts for x in part], dtype=np.int64)
        np.save(os.path.join(tmp, LABELS_FILE), labels)
        meta = {"image_set": image_set, "version": POOL_VERSION, "seed": seed, "num_images": num_images,
                "image_size": size, "classes": list(DEMO_CLASSES),
                "label_counts": np.bincount(labels, minlength=len(DEMO_CLASSES)).tolist()}
        with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
    logger.info("Drew the demo %s in %s", image_set, out)
    return out


def ensure_demo_pool(num_images: int, seed: int = 0, size: int = 128, root: str | None = None,
                     workers: int | None = None) -> str:
    """The pre-training pool (see :func:`ensure_image_set`)."""
    return ensure_image_set("pool", num_images, seed, size, root, workers)


def ensure_demo_probe_set(num_images: int, seed: int = 0, size: int = 128, root: str | None = None,
                          workers: int | None = None) -> str:
    """The labelled probe set (see :func:`ensure_image_set`)."""
    return ensure_image_set("probe", num_images, seed, size, root, workers)


def read_image_set(directory: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(images, labels, meta)`` of a drawn set: the images memory-mapped ``(N, S, S, 3)`` uint8.

    Raises:
        ValueError: a file is missing, cut or inconsistent (the message names it and says to
            delete the directory, which is then drawn again).
    """
    redo = f"delete {directory} and it is drawn again on next use"
    try:
        with open(os.path.join(directory, META_FILE), encoding="utf-8") as f:
            meta = json.load(f)
        images = np.load(os.path.join(directory, IMAGES_FILE), mmap_mode="r")
        labels = np.load(os.path.join(directory, LABELS_FILE))
    except (OSError, ValueError) as e:
        raise ValueError(f"the demo image set in {directory} is unreadable ({type(e).__name__}: {e}); {redo}") from e
    n = meta.get("num_images") if isinstance(meta, dict) else None
    if images.ndim != 4 or images.shape[0] != n or labels.shape != (n,) or images.shape[-1] != 3:
        raise ValueError(f"the demo image set in {directory} is inconsistent: {IMAGES_FILE} {images.shape}, "
                         f"{LABELS_FILE} {labels.shape}, {META_FILE} num_images={n}; {redo}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(meta.get("classes", []))):
        raise ValueError(f"{os.path.join(directory, LABELS_FILE)} holds labels outside the "
                         f"{len(meta.get('classes', []))} classes of {META_FILE}; {redo}")
    return images, labels, meta

