"""Run outputs written by hand: detections with planted errors (for TIDE and AP checks) and a
finished run's files (for collection, reports and the README's commands)."""

import copy
import json
import os

import numpy as np
from pycocotools import mask as mask_utils

from vitdet_bench.config import LazyConfig

from . import DEMO_CONFIG

__all__ = ["fake_finished_run", "planted_detections"]


def planted_detections(gt_json: str, path: str) -> str:
    """Detections from the ground truth with planted errors: shifted boxes, wrong classes,
    duplicates, background boxes and misses, with RLE masks."""
    gt = json.load(open(gt_json))
    rng = np.random.default_rng(0)
    cats = [c["id"] for c in gt["categories"]]
    images = {im["id"]: im for im in gt["images"]}
    dets = []
    for i, ann in enumerate(gt["annotations"]):
        im = images[ann["image_id"]]
        h, w = im["height"], im["width"]
        if i % 7 == 0:
            continue  # miss
        x, y, bw, bh = ann["bbox"]
        cat = ann["category_id"]
        if i % 5 == 1:
            x, y = x + 0.4 * bw, y + 0.3 * bh  # localisation error
        if i % 6 == 2:
            cat = cats[(cats.index(cat) + 1) % len(cats)]  # classification error
        seg = ann["segmentation"]
        if isinstance(seg, dict) and isinstance(seg["counts"], str):
            rle = dict(seg)  # already compressed RLE
        else:
            rles = mask_utils.frPyObjects(seg, h, w)
            rle = mask_utils.merge(rles) if isinstance(rles, list) else rles
            rle["counts"] = rle["counts"].decode()
        det = {"image_id": ann["image_id"], "category_id": cat, "bbox": [x, y, bw, bh],
               "score": float(rng.uniform(0.3, 1.0)), "segmentation": rle}
        dets.append(det)
        if i % 4 == 3:
            dets.append({**copy.deepcopy(det), "score": det["score"] * 0.9})  # duplicate
    for im in list(images.values())[:5]:  # background detections
        m = np.zeros((im["height"], im["width"]), dtype=np.uint8, order="F")
        m[:20, :20] = 1
        rle = mask_utils.encode(m)
        rle["counts"] = rle["counts"].decode()
        dets.append({"image_id": im["id"], "category_id": cats[0], "bbox": [0, 0, 20, 20], "score": 0.5,
                     "segmentation": rle})
    with open(path, "w") as f:
        json.dump(dets, f)
    return path


def fake_finished_run(run_dir, demo_root):
    """A finished 4-iteration run's files, written by hand: config.yaml, metrics.json with a final
    evaluation, and detections (the ground truth with planted errors) as the COCO results file."""
    os.makedirs(os.path.join(run_dir, "inference"))
    cfg = LazyConfig.apply_overrides(LazyConfig.load(DEMO_CONFIG), ["train.max_iter=4", "model.num_classes=4",
                                                                    "dataloader.test.dataset.names=demo_minival"])
    LazyConfig.save(cfg, os.path.join(run_dir, "config.yaml"))
    rows = [{"iteration": i, "total_loss": 4.0 - i, "time": 0.5} for i in range(4)]
    rows[-1].update({f"{t}/{m}": 10.0 + i for i, (t, m) in enumerate(
        (t, m) for t in ("bbox", "segm") for m in ("AP", "AP50", "AP75", "APs", "APm", "APl"))})
    with open(os.path.join(run_dir, "metrics.json"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    planted_detections(os.path.join(demo_root, "minival.json"),
                        os.path.join(run_dir, "inference", "coco_instances_results.json"))
