"""What ``tools/predict.py`` does with files: run a :class:`Predictor` over images and folders,
write each image with its detections drawn and one ``detections.json``, and lose nothing.

* Outputs mirror the inputs' paths below their common folder (``a/x.jpg`` and ``b/x.jpg`` become
  ``OUT/a/x.jpg`` and ``OUT/b/x.jpg``), so two inputs never share an output name.
* An output folder that is an input's folder, or an output that would land on an input file, is
  refused before anything runs: a user's images are never written over. Nor is any other file
  already in the output folder: only the drawings (and ``detections.json``) of an earlier
  prediction into that folder, listed in its ``detections.json``, are replaced.
* Everything is written to a hidden staging folder first and moved into place only when every
  image succeeded (or was skipped, with ``on_bad_image="skip"``, and listed as such in
  ``detections.json``); a failure leaves the output folder exactly as it was.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import Callable, Sequence

import numpy as np

from ..data.mapper import IMAGE_EXTENSIONS, ImageReadError, read_image

__all__ = ["collect_images", "output_paths", "predict_images"]

logger = logging.getLogger(__name__)


def collect_images(inputs: Sequence[str], exclude: str | None = None) -> list[str]:
    """Image files named by ``inputs``: files as given, folders searched recursively for
    ``IMAGE_EXTENSIONS`` (sorted; anything under ``exclude`` is left out). Duplicates count once.

    Raises:
        FileNotFoundError: an input that does not exist.
        ValueError: a folder without images.
    """
    out: list[str] = []
    skip = os.path.realpath(exclude) if exclude else None
    for item in inputs:
        if os.path.isdir(item):
            found = []
            for dirpath, dirnames, files in os.walk(item):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                     and os.path.realpath(os.path.join(dirpath, d)) != skip)
                found += [os.path.join(dirpath, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
            if not found:
                raise ValueError(f"Input folder {item} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            out += found
        elif os.path.isfile(item):
            out.append(item)
        else:
            raise FileNotFoundError(f"Input {item} does not exist")
    unique: dict[str, str] = {}
    for path in out:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def _earlier_outputs(output_dir: str) -> set[str]:
    """The drawings an earlier prediction wrote into ``output_dir`` (real paths, from its
    ``detections.json``); those may be replaced.

    Raises:
        ValueError: ``output_dir/detections.json`` exists but is not one this tool wrote.
    """
    path = os.path.join(output_dir, "detections.json")
    if not os.path.exists(path):
        return set()
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        images = data["images"]
        return {os.path.realpath(str(record["output_image"])) for record in images}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--output {output_dir} holds a detections.json that tools/predict.py did not write (or "
                         f"that is damaged: {type(e).__name__}), which this prediction would replace. Choose "
                         "another output folder.") from None


def output_paths(images: Sequence[str], output_dir: str, input_dirs: Sequence[str] = ()) -> dict[str, str]:
    """Where each image's drawing goes: its path below the inputs' common folder, under ``output_dir``.

    Raises:
        ValueError: ``output_dir`` is a file or an input folder (or the folder of an input file),
            an output would be written over an input or over a file that is not a drawing of an
            earlier prediction into ``output_dir``, or two inputs would get the same output.
    """
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output {output_dir} is a file, not a folder: give a folder for the drawings and "
                         "detections.json (it is created when missing)")
    real_out = os.path.realpath(output_dir)
    folders = {os.path.realpath(d) for d in input_dirs} | {os.path.realpath(os.path.dirname(os.path.abspath(p)))
                                                            for p in images}
    if real_out in folders:
        raise ValueError(f"--output {output_dir} is the folder of the input images: the drawings would replace "
                         "them. Choose another output folder.")
    root = os.path.commonpath([os.path.dirname(os.path.realpath(p)) for p in images]) if images else ""
    mapping: dict[str, str] = {}
    taken: dict[str, str] = {}
    sources = {os.path.realpath(p) for p in images}
    earlier = _earlier_outputs(output_dir)
    for path in images:
        rel = os.path.relpath(os.path.realpath(path), root)
        if not rel.lower().endswith(IMAGE_EXTENSIONS):
            rel += ".png"  # OpenCV picks the format from the name; keep the original name visible
        out = os.path.join(output_dir, rel)
        real = os.path.realpath(out)
        if real in sources:
            raise ValueError(f"The drawing of {path} would be written over the input {out}; choose an --output "
                             "folder outside the inputs' folders.")
        if real in taken:
            raise ValueError(f"Inputs {taken[real]} and {path} would both be drawn to {out}")
        if os.path.lexists(out) and real not in earlier:
            raise ValueError(f"The drawing of {path} would replace {out}, a file that is not a drawing of an earlier "
                             f"prediction into {output_dir} (not listed in its detections.json). Choose an empty or "
                             "new --output folder.")
        taken[real] = path
        mapping[path] = out
    return mapping


def _detections_json(det: dict) -> list[dict]:
    from pycocotools import mask as mask_util

    items = []
    for k in range(len(det["scores"])):
        x0, y0, x1, y1 = (float(v) for v in det["boxes"][k])
        item = {"label": int(det["labels"][k]), "class_name": det["class_names"][k], "score": float(det["scores"][k]),
                "bbox": [x0, y0, x1 - x0, y1 - y0]}
        if det.get("masks") is not None:
            rle = mask_util.encode(np.asfortranarray(det["masks"][k].astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            item["segmentation"] = rle
        items.append(item)
    return items


def predict_images(predictor: Callable[[np.ndarray], dict], inputs: Sequence[str], output_dir: str,
                   on_bad_image: str = "error", info: dict | None = None) -> dict:
    """Run ``predictor`` on every image of ``inputs`` and write the drawings and ``detections.json``.

    Args:
        predictor: a :class:`~vitdet_bench.engine.Predictor` (called on an ``(H, W, 3)`` RGB array).
        inputs: image files and folders.
        output_dir: where drawings (mirroring the input paths) and ``detections.json`` go.
        on_bad_image: ``"error"`` stops at a missing, corrupt or truncated image and writes
            nothing; ``"skip"`` leaves it out and lists it under ``"skipped"`` in the JSON.
        info: extra top-level entries for ``detections.json`` (config, weights, threshold).

    Returns:
        what ``detections.json`` holds.
    """
    import cv2

    from ..utils.visualizer import draw_detections

    if on_bad_image not in ("error", "skip"):
        raise ValueError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
    images = collect_images(inputs, exclude=output_dir)
    mapping = output_paths(images, output_dir, [d for d in inputs if os.path.isdir(d)])
    os.makedirs(output_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".predict-", dir=output_dir)
    records, skipped = [], []
    try:
        for path in images:
            try:
                image = read_image({"file_name": path})
            except ImageReadError as e:
                if on_bad_image == "error":
                    raise ImageReadError(f"{e}. Nothing was written to {output_dir}; fix or remove the image, or "
                                         "pass --on-bad-image skip to leave it out.") from e
                logger.warning("Skipping %s", e)
                skipped.append({"file_name": os.path.abspath(path), "error": str(e)})
                continue
            det = predictor(image)
            out = mapping[path]
            staged = os.path.join(staging, os.path.relpath(out, output_dir))
            os.makedirs(os.path.dirname(staged), exist_ok=True)
            if not cv2.imwrite(staged, np.ascontiguousarray(draw_detections(image, det)[..., ::-1])):
                raise OSError(f"OpenCV could not write {staged}")
            items = _detections_json(det)
            records.append({"file_name": os.path.abspath(path), "height": int(image.shape[0]),
                            "width": int(image.shape[1]), "output_image": os.path.abspath(out), "detections": items})
            logger.info("%s: %d detections -> %s", path, len(items), out)
        result = {**(info or {}), "images": records, "skipped": skipped}
        # Every image is done: move the drawings into place, then write the JSON last.
        for record in records:
            out = os.path.relpath(record["output_image"], os.path.abspath(output_dir))
            os.makedirs(os.path.dirname(os.path.join(output_dir, out)), exist_ok=True)
            os.replace(os.path.join(staging, out), os.path.join(output_dir, out))
        tmp = os.path.join(staging, "detections.json")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(result, f)
        os.replace(tmp, os.path.join(output_dir, "detections.json"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result
