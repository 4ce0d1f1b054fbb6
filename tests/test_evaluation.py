"""COCO evaluation equals pycocotools run directly on the same files."""

import contextlib
import io
import json
import os

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vitdet_bench.data import annotation_to_mask, get_detection_dataset
from vitdet_bench.evaluation import COCOEvaluator


def _noisy_outputs(records, rng):
    """Detections made from the ground truth: jittered boxes, shifted masks, random scores,
    some wrong classes and some background boxes."""
    outputs = []
    for r in records:
        boxes, scores, labels, masks = [], [], [], []
        for a in r["annotations"]:
            if a["iscrowd"]:
                continue
            x, y, w, h = a["bbox"]
            j = rng.normal(0, 0.08, 4) * [w, h, w, h]
            boxes.append([x + j[0], y + j[1], x + w + j[2], y + h + j[3]])
            scores.append(rng.uniform(0.3, 1.0))
            labels.append(a["category_id"] if rng.random() > 0.2 else (a["category_id"] + 1) % 4)
            m = annotation_to_mask(a["segmentation"], r["height"], r["width"])
            masks.append(np.roll(m, int(rng.integers(-2, 3)), axis=1))
        for _ in range(2):
            x0, y0 = rng.uniform(0, r["width"] - 20), rng.uniform(0, r["height"] - 20)
            boxes.append([x0, y0, x0 + 20, y0 + 20])
            scores.append(rng.uniform(0.05, 0.5))
            labels.append(int(rng.integers(4)))
            m = np.zeros((r["height"], r["width"]), np.uint8)
            m[int(y0):int(y0) + 20, int(x0):int(x0) + 20] = 1
            masks.append(m)
        outputs.append({
            "boxes": torch.tensor(boxes, dtype=torch.float32).clamp(min=0),
            "scores": torch.tensor(scores), "labels": torch.tensor(labels),
            "masks": torch.from_numpy(np.stack(masks)).bool(),
        })
    return outputs


def test_coco_ap_equals_pycocotools_on_the_same_files(tmp_path):
    records, meta = get_detection_dataset("demo_val")
    outputs = _noisy_outputs(records, np.random.default_rng(0))
    evaluator = COCOEvaluator("demo_val", output_dir=str(tmp_path))
    evaluator.reset()
    for r, out in zip(records, outputs):
        evaluator.process([{"image_id": r["image_id"]}], [out])
    ours = evaluator.evaluate()
    results_file = os.path.join(tmp_path, "coco_instances_results.json")
    assert len(json.load(open(results_file))) == sum(len(o["boxes"]) for o in outputs)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(meta.json_file)
        for task in ("bbox", "segm"):
            dets = json.load(open(results_file))
            if task == "bbox":
                for d in dets:
                    d.pop("segmentation")
            ev = COCOeval(gt, gt.loadRes(dets), task)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            ref = [v * 100 if v >= 0 else float("nan") for v in ev.stats[:6]]
            got = [ours[task][k] for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")]
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    # Non-trivial numbers: the noise leaves a middling AP.
    assert 20 < ours["bbox"]["AP"] < 95 and 20 < ours["segm"]["AP"] < 95
    assert set(f"AP-{c}" for c in meta.thing_classes) <= set(ours["bbox"])


def test_no_detections_give_nan_not_a_crash(tmp_path):
    evaluator = COCOEvaluator("demo_val", output_dir=str(tmp_path))
    evaluator.reset()
    out = evaluator.evaluate()
    assert all(np.isnan(v) for v in out["bbox"].values())
