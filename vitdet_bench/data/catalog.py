"""Dataset catalog: a name maps to a COCO JSON file and an image root.

``coco_2017_train`` / ``coco_2017_val`` are predefined under ``$VITDET_BENCH_DATASETS`` (falling back
to ``$DETECTRON2_DATASETS``, then ``./datasets``), laid out as Detectron2 expects:
``coco/annotations/instances_train2017.json`` and ``coco/train2017/``; ``coco_2017_select`` /
``coco_2017_train_search`` are 5,000 train2017 images held out for the tuning search and the rest
(:mod:`.held_out`, made on first use). ``demo_train`` / ``demo_val``
(2,000 / 250 images) are the bundled synthetic dataset, generated on first use, with named slices
(``demo.SUBSETS``): ``demo_minival`` / ``demo_val100`` the first 50 / 100 ``demo_val`` images (quick
evaluations, the benchmark's convergence curve), ``demo_train_search`` / ``demo_select`` the first
1,800 / last 200 ``demo_train`` images (the tuning search's training and selection split). Any other
COCO-format dataset is one call (or one config line) away: :func:`register_coco_instances`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial
from typing import Callable

from .coco import DatasetMetadata, load_coco_json, read_coco_categories
from .demo import SUBSETS, ensure_demo_dataset

__all__ = [
    "DatasetSpec",
    "register_coco_instances",
    "registered_datasets",
    "get_dataset_spec",
    "get_metadata",
    "load_dataset",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSpec:
    """Where a COCO-format dataset lives."""

    name: str
    json_file: str
    image_root: str


# name -> a function that returns the spec. A function, as in Detectron2's DatasetCatalog, so that
# a dataset can be prepared (the demo set is generated) or its root read from the environment only
# when it is used.
_CATALOG: dict[str, Callable[[], DatasetSpec]] = {}


def datasets_root() -> str:
    return os.environ.get("VITDET_BENCH_DATASETS", os.environ.get("DETECTRON2_DATASETS", "datasets"))


def register_coco_instances(name: str, json_file: str, image_root: str) -> str:
    """Register a COCO-format dataset under ``name`` (re-registering the same paths is a no-op).

    Returns:
        the name, so a config can write ``names=register_coco_instances("mine", json, root)``.
    """
    spec = DatasetSpec(name, os.path.expanduser(json_file), os.path.expanduser(image_root))
    if name in _CATALOG:
        old = _CATALOG[name]()
        if (old.json_file, old.image_root) != (spec.json_file, spec.image_root):
            raise ValueError(
                f"Dataset '{name}' is already registered with {old.json_file} / {old.image_root}; "
                f"cannot re-register it with {spec.json_file} / {spec.image_root}"
            )
    _CATALOG[name] = lambda: spec
    return name


def registered_datasets() -> list[str]:
    return sorted(_CATALOG)


def get_dataset_spec(name: str) -> DatasetSpec:
    if name not in _CATALOG:
        raise KeyError(
            f"Dataset '{name}' is not registered. Registered: {', '.join(registered_datasets())}. "
            "Register a COCO-format dataset with register_coco_instances(name, json_file, image_root), "
            "or give its files with the name, for detection and for pre-training alike: "
            f"dataloader.train.dataset.names={name} +dataloader.train.dataset.json_file=FILE.json "
            "+dataloader.train.dataset.image_root=IMAGE_DIR (dataloader.test.dataset.* for evaluation)."
        )
    return _CATALOG[name]()


def get_metadata(name: str) -> DatasetMetadata:
    """Class names and ids of a registered dataset (reads only its categories)."""
    spec = get_dataset_spec(name)
    return read_coco_categories(name, spec.json_file, spec.image_root)


def load_dataset(
    name: str, filter_empty: bool = False, on_bad_annotation: str = "error"
) -> tuple[list[dict], DatasetMetadata]:
    """Load a registered dataset's records (see :func:`~vitdet_bench.data.coco.load_coco_json`)."""
    spec = get_dataset_spec(name)
    return load_coco_json(
        spec.json_file,
        spec.image_root,
        dataset_name=name,
        filter_empty=filter_empty,
        on_bad_annotation=on_bad_annotation,
    )


def _coco_2017(split: str) -> DatasetSpec:
    root = datasets_root()
    return DatasetSpec(
        f"coco_2017_{split}",
        os.path.join(root, "coco", "annotations", f"instances_{split}2017.json"),
        os.path.join(root, "coco", f"{split}2017"),
    )


def _demo(split: str, image_dir: str) -> DatasetSpec:
    root = ensure_demo_dataset()
    return DatasetSpec(f"demo_{split}", os.path.join(root, f"{split}.json"), os.path.join(root, image_dir))


# The tuning search's selection split at COCO scale: 5,000 train2017 images held out (held_out.py).
COCO_SELECT_IMAGES = 5000


def _coco_held_out(part: str) -> DatasetSpec:
    from .held_out import held_out_split

    train = _coco_2017("train")
    paths = dict(zip(("train_search", "select"), held_out_split(train.json_file, COCO_SELECT_IMAGES)))
    return DatasetSpec(f"coco_2017_{part}", paths[part], train.image_root)


_CATALOG["coco_2017_train_search"] = partial(_coco_held_out, "train_search")
_CATALOG["coco_2017_select"] = partial(_coco_held_out, "select")
for _split in ("train", "val"):
    _CATALOG[f"coco_2017_{_split}"] = partial(_coco_2017, _split)
    _CATALOG[f"demo_{_split}"] = partial(_demo, _split, _split)
for _subset, (_split, _, _) in SUBSETS.items():
    _CATALOG[f"demo_{_subset}"] = partial(_demo, _subset, _split)
