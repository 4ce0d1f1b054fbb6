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
    records, meta = get_detection_dataset("demo_minival")
    outputs = _noisy_outputs(records, np.random.default_rng(0))
    evaluator = COCOEvaluator("demo_minival", output_dir=str(tmp_path))
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
    evaluator = COCOEvaluator("demo_minival", output_dir=str(tmp_path))
    evaluator.reset()
    out = evaluator.evaluate()
    assert all(np.isnan(v) for v in out["bbox"].values())


def _toy_coco(rng, num_images=6):
    """Ground truth of 3 categories with boxes and polygon masks, crowd and tiny objects included,
    and detections near them (distinct scores, so COCO's tie order does not matter)."""
    images, anns, dets = [], [], []
    for i in range(1, num_images + 1):
        images.append({"id": i, "width": 64, "height": 48, "file_name": f"{i}.jpg"})
        for _ in range(int(rng.integers(0, 4))):
            x, y = rng.uniform(0, 40), rng.uniform(0, 30)
            w, h = rng.uniform(4, 24), rng.uniform(4, 18)
            poly = [x, y, x + w, y, x + w, y + h, x, y + h]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(rng.integers(1, 4)),
                         "bbox": [x, y, w, h], "area": w * h, "segmentation": [poly],
                         "iscrowd": int(rng.random() < 0.1)})
            for _ in range(int(rng.integers(0, 3))):
                j = rng.normal(0, 0.15, 4) * [w, h, w, h]
                box = [x + j[0], y + j[1], max(w + j[2], 1), max(h + j[3], 1)]
                dets.append({"image_id": i, "bbox": box, "score": float(rng.uniform(0.05, 1)),
                             "category_id": int(rng.integers(1, 4)) if rng.random() < 0.3 else anns[-1]["category_id"]})
        for _ in range(int(rng.integers(0, 3))):  # background boxes
            dets.append({"image_id": i, "bbox": [float(rng.uniform(0, 50)), float(rng.uniform(0, 35)), 8.0, 8.0],
                         "score": float(rng.uniform(0.05, 1)), "category_id": int(rng.integers(1, 4))})
    cats = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def _pycocotools_ap_with_duplicates(gt, dets, counts, tmp_path):
    """pycocotools on a dataset in which image i appears counts[i] times (new ids for the copies)."""
    images, anns, res = [], [], []
    for i, img in enumerate(gt["images"]):
        for c in range(int(counts[i])):
            new_id = len(images) + 1
            images.append({**img, "id": new_id})
            for a in gt["annotations"]:
                if a["image_id"] == img["id"]:
                    anns.append({**a, "id": len(anns) + 1, "image_id": new_id})
            res += [{**d, "image_id": new_id} for d in dets if d["image_id"] == img["id"]]
    path = tmp_path / "dup.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": gt["categories"]}))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
        ev = COCOeval(coco, coco.loadRes(res), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": ev.stats[0] * 100, "AP50": ev.stats[1] * 100, "AP75": ev.stats[2] * 100}


def test_weighted_ap_equals_pycocotools_on_duplicated_images(tmp_path):
    from vitdet_bench.evaluation.bootstrap import match_table, weighted_ap

    rng = np.random.default_rng(0)
    gt, dets = _toy_coco(rng)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    table = match_table(str(tmp_path / "gt.json"), dets, "bbox")
    assert list(table.image_ids) == [1, 2, 3, 4, 5, 6]
    for counts in ([1] * 6, [2, 0, 1, 3, 0, 1], [0, 0, 4, 1, 1, 0], [6, 0, 0, 0, 0, 0]):
        ours = weighted_ap(table, None if counts == [1] * 6 else np.array(counts))
        ref = _pycocotools_ap_with_duplicates(gt, dets, counts, tmp_path)
        for k in ("AP", "AP50", "AP75"):
            if ref[k] < 0:  # pycocotools: no ground truth at all in this resample
                assert np.isnan(ours[k])
            else:
                assert ours[k] == pytest.approx(ref[k], abs=1e-9), (counts, k)


def test_bootstrap_interval_equals_direct_resampling(tmp_path):
    """The percentile interval over resamples equals the quantiles of pycocotools' AP on each
    resample's duplicated dataset, with the same draws."""
    from vitdet_bench.evaluation.bootstrap import match_table, percentile_interval, resample_counts, weighted_ap

    rng = np.random.default_rng(1)
    gt, dets = _toy_coco(rng, num_images=5)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    table = match_table(str(tmp_path / "gt.json"), dets, "bbox")
    draws = resample_counts(5, 30, seed=7)
    assert draws.shape == (30, 5) and (draws.sum(1) == 5).all()
    ours = [weighted_ap(table, c)["AP"] for c in draws]
    direct = []
    for c in draws:
        ap = _pycocotools_ap_with_duplicates(gt, dets, c, tmp_path)["AP"]
        direct.append(np.nan if ap < 0 else ap)
    np.testing.assert_allclose(ours, direct, atol=1e-9)
    lo, hi = percentile_interval(np.array(ours), 0.95)
    finite = np.array([d for d in direct if not np.isnan(d)])
    assert (lo, hi) == pytest.approx(tuple(np.percentile(finite, [2.5, 97.5])))
    assert lo <= weighted_ap(table)["AP"] <= hi
