"""Read a COCO instances JSON into per-image records, checking every field a detector relies on.

Bad input fails with a message that names the JSON file, the image or annotation id and the field
(or, with ``on_bad_annotation="skip"``, drops the annotation and logs how many were dropped).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DatasetMetadata", "CocoFormatError", "load_coco_json", "read_coco_categories"]

logger = logging.getLogger(__name__)

BAD_ANNOTATION_POLICIES = ("error", "skip")


class CocoFormatError(ValueError):
    """A COCO JSON file that is malformed or holds an invalid record."""


@dataclass(frozen=True)
class DatasetMetadata:
    """What the model, evaluator and visualizer need to know about a dataset.

    Args:
        name: the catalog name.
        json_file: path to the COCO instances JSON (the ground truth for evaluation).
        image_root: directory the ``file_name`` fields are relative to.
        thing_classes: class names in contiguous order (index = the model's class index).
        thing_dataset_ids: the COCO ``category_id`` of each contiguous class.
    """

    name: str
    json_file: str
    image_root: str
    thing_classes: tuple[str, ...] = field(default_factory=tuple)
    thing_dataset_ids: tuple[int, ...] = field(default_factory=tuple)

    @property
    def num_classes(self) -> int:
        return len(self.thing_classes)

    @property
    def dataset_id_to_contiguous_id(self) -> dict[int, int]:
        return {cat_id: i for i, cat_id in enumerate(self.thing_dataset_ids)}


def _read_json(json_file: str) -> dict:
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"COCO annotation file {json_file} does not exist")
    try:
        with open(json_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise CocoFormatError(
            f"{json_file}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
            "the file may be truncated"
        ) from e
    if not isinstance(data, dict):
        raise CocoFormatError(f"{json_file}: top level must be an object, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise CocoFormatError(f"{json_file}: missing top-level field '{key}'")
        if not isinstance(data[key], list):
            raise CocoFormatError(f"{json_file}: field '{key}' must be a list")
    return data


def _parse_categories(json_file: str, categories: list) -> tuple[tuple[str, ...], tuple[int, ...]]:
    seen: dict[int, str] = {}
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise CocoFormatError(f"{json_file}: categories[{i}] needs 'id' and 'name', got {cat!r}")
        if cat["id"] in seen:
            raise CocoFormatError(f"{json_file}: category id {cat['id']} appears twice")
        seen[int(cat["id"])] = str(cat["name"])
    if not seen:
        raise CocoFormatError(f"{json_file}: 'categories' is empty")
    ids = tuple(sorted(seen))
    return tuple(seen[i] for i in ids), ids


def read_coco_categories(name: str, json_file: str, image_root: str) -> DatasetMetadata:
    """Metadata of a COCO dataset (class names, ids) without loading its annotations."""
    data = _read_json(json_file)
    classes, ids = _parse_categories(json_file, data["categories"])
    return DatasetMetadata(name, json_file, image_root, classes, ids)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _check_segmentation(seg: Any) -> str | None:
    """Return why a segmentation is invalid, or None when it is a valid polygon list or RLE."""
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            return "RLE segmentation needs 'counts' and 'size'"
        return None
    if isinstance(seg, list):
        polys = [p for p in seg if isinstance(p, list)]
        if len(polys) != len(seg) or not polys:
            return "polygon segmentation must be a non-empty list of coordinate lists"
        for p in polys:
            if len(p) % 2 != 0 or len(p) < 6:
                return f"a polygon needs an even number (>= 6) of coordinates, got {len(p)}"
        return None
    return f"segmentation must be a polygon list or an RLE dict, got {type(seg).__name__}"


def load_coco_json(
    json_file: str,
    image_root: str,
    dataset_name: str = "",
    filter_empty: bool = False,
    on_bad_annotation: str = "error",
    require_masks: bool = True,
) -> tuple[list[dict], DatasetMetadata]:
    """Load a COCO instances file into Detectron2-style per-image records.

    Args:
        json_file: the COCO JSON path.
        image_root: directory holding the images named by ``file_name``.
        dataset_name: name used in messages and the returned metadata.
        filter_empty: drop images with no (non-crowd) annotation, as training does.
        on_bad_annotation: ``"error"`` raises on a degenerate box or invalid segmentation;
            ``"skip"`` drops such annotations and logs how many were dropped.
        require_masks: annotations must carry a segmentation (Mask R-CNN training needs them).

    Returns:
        ``(records, metadata)``. Each record has ``file_name`` (absolute), ``image_id``, ``height``,
        ``width`` and ``annotations``: dicts with ``bbox`` (XYWH, pixels), ``category_id``
        (contiguous, 0-based), ``segmentation`` (polygons or RLE) and ``iscrowd``.
    """
    if on_bad_annotation not in BAD_ANNOTATION_POLICIES:
        raise ValueError(
            f"on_bad_annotation must be one of {BAD_ANNOTATION_POLICIES}, got {on_bad_annotation!r}"
        )
    data = _read_json(json_file)
    classes, cat_ids = _parse_categories(json_file, data["categories"])
    metadata = DatasetMetadata(dataset_name, json_file, image_root, classes, cat_ids)
    to_contiguous = metadata.dataset_id_to_contiguous_id

    records: dict[int, dict] = {}
    for i, img in enumerate(data["images"]):
        for key in ("id", "file_name", "height", "width"):
            if not isinstance(img, dict) or key not in img:
                raise CocoFormatError(f"{json_file}: images[{i}] is missing field '{key}'")
        if img["id"] in records:
            raise CocoFormatError(f"{json_file}: image id {img['id']} appears twice")
        size_ok = all(_is_number(img[k]) and img[k] > 0 for k in ("height", "width"))
        if not size_ok:
            raise CocoFormatError(
                f"{json_file}: image id {img['id']} has invalid size "
                f"height={img['height']!r} width={img['width']!r} (positive numbers expected)"
            )
        records[img["id"]] = {
            "file_name": os.path.join(image_root, img["file_name"]),
            "image_id": img["id"],
            "height": int(img["height"]),
            "width": int(img["width"]),
            "annotations": [],
        }

    skipped: dict[str, int] = {}

    def bad(ann_id: Any, image_id: Any, reason: str) -> None:
        if on_bad_annotation == "error":
            raise CocoFormatError(
                f"{json_file}: annotation id {ann_id} (image id {image_id}): {reason}. "
                "Fix the file or set on_bad_annotation='skip' to drop such annotations."
            )
        kind = reason.split(":")[0]
        skipped[kind] = skipped.get(kind, 0) + 1

    for i, ann in enumerate(data["annotations"]):
        ann_id = ann.get("id", f"#{i}") if isinstance(ann, dict) else f"#{i}"
        for key in ("image_id", "category_id", "bbox"):
            if not isinstance(ann, dict) or key not in ann:
                raise CocoFormatError(f"{json_file}: annotation id {ann_id} is missing field '{key}'")
        image_id = ann["image_id"]
        if image_id not in records:
            raise CocoFormatError(
                f"{json_file}: annotation id {ann_id} refers to image id {image_id}, "
                "which is not in 'images'"
            )
        if ann["category_id"] not in to_contiguous:
            raise CocoFormatError(
                f"{json_file}: annotation id {ann_id} (image id {image_id}) has category_id "
                f"{ann['category_id']}, which is not in 'categories' (known ids: {list(cat_ids)})"
            )
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            bad(ann_id, image_id, f"bbox: must be four numbers [x, y, width, height], got {bbox!r}")
            continue
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            bad(ann_id, image_id, f"bbox: non-positive width or height in {bbox}")
            continue
        if ann.get("iscrowd", 0) not in (0, 1, True, False):
            raise CocoFormatError(f"{json_file}: annotation id {ann_id} (image id {image_id}): iscrowd must be 0 or 1, "
                                  f"got {ann['iscrowd']!r}")
        iscrowd = int(ann.get("iscrowd", 0))
        seg = ann.get("segmentation")
        if seg is None or seg == []:
            if require_masks and not iscrowd:
                bad(ann_id, image_id, "segmentation: missing")
                continue
        else:
            reason = _check_segmentation(seg)
            if reason is not None:
                bad(ann_id, image_id, f"segmentation: {reason}")
                continue
        records[image_id]["annotations"].append(
            {
                "id": ann_id,
                "bbox": [x, y, w, h],
                "category_id": to_contiguous[ann["category_id"]],
                "segmentation": seg,
                "iscrowd": iscrowd,
            }
        )
    if skipped:
        logger.warning(
            "%s: skipped %d bad annotations (%s)",
            json_file,
            sum(skipped.values()),
            ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())),
        )
    out = list(records.values())
    if filter_empty:
        before = len(out)
        out = [r for r in out if any(not a["iscrowd"] for a in r["annotations"])]
        if before != len(out):
            logger.info("%s: removed %d images without annotations", json_file, before - len(out))
    logger.info(
        "Loaded %d images, %d annotations, %d classes from %s",
        len(out),
        sum(len(r["annotations"]) for r in out),
        len(classes),
        json_file,
    )
    return out, metadata
