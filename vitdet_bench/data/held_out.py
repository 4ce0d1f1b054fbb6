"""A split held out from a COCO-format training set, for selecting hyper-parameters without the
split a table reports (the tuning search's ``select_split``).

The benchmarking paper tuned on COCO val2017 and reported on it too, which flatters every row.
Here ``coco_2017_select`` is a fixed set of 5,000 train2017 images and ``coco_2017_train_search``
the other 113,287: the search trains on the latter and scores the former. The images are chosen
deterministically (a seeded permutation of the sorted image ids), written once into the cache as
two COCO JSON files (same image root) and a list of the held-out ids, so every machine builds the
same split and anyone can read which images it holds.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from ..utils.cache import build_directory_atomically, is_complete

__all__ = ["SELECT_IDS_FILE", "held_out_split"]

logger = logging.getLogger(__name__)

SELECT_IDS_FILE = "select_image_ids.txt"


def held_out_split(json_file: str, num_select: int, seed: int = 0, root: str | None = None) -> tuple[str, str]:
    """Split a COCO instances file into ``(train_search.json, select.json)`` paths (built once).

    Args:
        json_file: the training set's COCO JSON.
        num_select: images held out for selection.
        seed: the permutation's seed.
        root: cache root (default: the demo cache, ``$VITDET_BENCH_CACHE``).
    Raises:
        FileNotFoundError / ValueError: the file is missing, or has no more images than ``num_select``.
    """
    from .demo import demo_cache_dir

    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"{json_file} does not exist: the held-out split is made from the training set's "
                                "annotations (set $VITDET_BENCH_DATASETS to the folder holding coco/)")
    stem = os.path.splitext(os.path.basename(json_file))[0]
    size = os.path.getsize(json_file)
    out = os.path.join(root or demo_cache_dir(), "splits", f"{stem}_{size}_select{num_select}_seed{seed}")
    train_path, select_path = os.path.join(out, "train_search.json"), os.path.join(out, "select.json")
    if is_complete(out):
        return train_path, select_path
    with open(json_file, encoding="utf-8") as f:
        coco = json.load(f)
    ids = sorted(im["id"] for im in coco["images"])
    if len(ids) <= num_select:
        raise ValueError(f"{json_file} has {len(ids)} images: cannot hold out {num_select} and train on the rest")
    held = set(np.asarray(ids)[np.random.default_rng(seed).permutation(len(ids))[:num_select]].tolist())
    logger.info("Holding out %d of the %d images of %s for selection (seed %d) in %s", num_select, len(ids),
                json_file, seed, out)
    with build_directory_atomically(os.path.dirname(out), out, ".split_tmp_") as tmp:
        for path, keep in ((os.path.join(tmp, "train_search.json"), lambda i: i not in held),
                           (os.path.join(tmp, "select.json"), lambda i: i in held)):
            part = {**coco, "images": [im for im in coco["images"] if keep(im["id"])],
                    "annotations": [a for a in coco["annotations"] if keep(a["image_id"])]}
            with open(path, "w", encoding="utf-8") as f:
                json.dump(part, f)
        with open(os.path.join(tmp, SELECT_IDS_FILE), "w", encoding="utf-8") as f:
            f.write("\n".join(str(i) for i in sorted(held)) + "\n")
    return train_path, select_path
