"""Bootstrap confidence intervals for COCO AP over the evaluation images.

COCO AP is not a mean over images, so its uncertainty is estimated by resampling the images: draw
``I`` images with replacement, recompute AP, repeat. Re-running ``COCOeval`` for every resample
costs seconds each; instead, ``COCOeval.evaluate()`` runs once and its per-image matching (which
detection matched which ground truth at each IoU threshold, which are ignored) is kept in a
:class:`MatchTable`. AP for a resample is then ``COCOeval.accumulate()``'s computation with every
image's detections and ground truth counted as many times as the image was drawn: the same numbers
pycocotools gives on a dataset with the drawn images duplicated (tested), in milliseconds.

Only what the report needs is kept: area range "all" and 100 detections per image (COCO's AP,
AP50, AP75). No package computes weighted COCO AP, so this is written here.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = ["MatchTable", "match_table", "weighted_ap", "resample_counts", "percentile_interval"]


@dataclass
class _CategoryMatches:
    """Detections of one category over all images, in COCO's accumulation order."""

    image_index: np.ndarray  # (D,) index into MatchTable.image_ids of each detection
    true_pos: np.ndarray  # (T, D) matched and not ignored
    false_pos: np.ndarray  # (T, D) unmatched and not ignored
    gt_per_image: np.ndarray  # (I,) non-ignored ground truth of this category per image


@dataclass
class MatchTable:
    """COCOeval's per-image matching for one task (area "all", 100 detections per image).

    Attributes:
        image_ids: the evaluated image ids, in COCOeval's order.
        iou_thresholds: ``(T,)`` the IoU thresholds (0.5 ... 0.95).
        recall_thresholds: ``(R,)`` the recall points of COCO's interpolated precision.
        categories: one :class:`_CategoryMatches` per category id.
    """

    image_ids: np.ndarray
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    categories: dict[int, _CategoryMatches]

    @property
    def num_images(self) -> int:
        return len(self.image_ids)


def match_table(gt_json: str | COCO, results: list[dict] | str, task: str) -> MatchTable:
    """Run ``COCOeval.evaluate()`` once and keep its per-image matches.

    Args:
        gt_json: the ground-truth COCO file (or a loaded ``COCO``).
        results: COCO results (a list or a JSON path), as ``coco_instances_results.json``.
        task: "bbox" or "segm".
    """
    if task not in ("bbox", "segm"):
        raise ValueError(f"task must be 'bbox' or 'segm', got {task!r}")
    if isinstance(results, str):
        with open(results, encoding="utf-8") as f:
            results = json.load(f)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = gt_json if isinstance(gt_json, COCO) else COCO(gt_json)
        dets = [dict(r) for r in results if task == "bbox" or "segmentation" in r]
        if task == "bbox":
            for r in dets:
                r.pop("segmentation", None)
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:  # loadRes rejects an empty list: an empty detection set instead
            coco_dt = COCO()
            coco_dt.dataset = {"images": coco_gt.dataset["images"], "annotations": [],
                               "categories": coco_gt.dataset["categories"]}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, task)
        ev.evaluate()
    p = ev.params
    num_images, num_areas = len(p.imgIds), len(p.areaRng)
    max_det = p.maxDets[-1]
    categories = {}
    for k, cat in enumerate(p.catIds):
        # evalImgs is ordered [category][area][image]; area index 0 is "all".
        per_image = ev.evalImgs[k * num_areas * num_images : k * num_areas * num_images + num_images]
        scores, img_idx, matches, ignores = [], [], [], []
        gt = np.zeros(num_images, np.int64)
        for i, e in enumerate(per_image):
            if e is None:
                continue
            s = np.asarray(e["dtScores"][:max_det], dtype=np.float64)
            scores.append(s)
            img_idx.append(np.full(len(s), i, np.int64))
            matches.append(np.asarray(e["dtMatches"])[:, :max_det])
            ignores.append(np.asarray(e["dtIgnore"])[:, :max_det])
            gt[i] = int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
        t = len(p.iouThrs)
        if scores:
            s = np.concatenate(scores)
            order = np.argsort(-s, kind="mergesort")  # COCOeval.accumulate's order, ties included
            dtm = np.concatenate(matches, axis=1)[:, order]
            dtig = np.concatenate(ignores, axis=1)[:, order].astype(bool)
            categories[cat] = _CategoryMatches(
                np.concatenate(img_idx)[order], (dtm != 0) & ~dtig, (dtm == 0) & ~dtig, gt)
        else:
            categories[cat] = _CategoryMatches(np.zeros(0, np.int64), np.zeros((t, 0), bool), np.zeros((t, 0), bool),
                                               gt)
    return MatchTable(np.asarray(p.imgIds), np.asarray(p.iouThrs), np.asarray(p.recThrs), categories)


def _interpolated_precision(tp_cum: np.ndarray, fp_cum: np.ndarray, num_gt: float, rec_thrs: np.ndarray) -> np.ndarray:
    """``(T, R)`` COCO's interpolated precision at the recall thresholds (``COCOeval.accumulate``)."""
    t, d = tp_cum.shape
    q = np.zeros((t, len(rec_thrs)))
    if d == 0:
        return q
    rc = tp_cum / num_gt
    pr = tp_cum / (fp_cum + tp_cum + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision envelope
    for ti in range(t):
        inds = np.searchsorted(rc[ti], rec_thrs, side="left")
        valid = inds < d
        q[ti, valid] = pr[ti, inds[valid]]
    return q


def weighted_ap(table: MatchTable, counts: np.ndarray | None = None) -> dict[str, float]:
    """COCO AP / AP50 / AP75 (in percent) with image ``i`` counted ``counts[i]`` times.

    ``counts=None`` counts every image once, which is exactly ``COCOeval``'s AP. A category
    without ground truth in the (re)sample is left out of the mean, as COCO does.
    """
    weights = np.ones(table.num_images) if counts is None else np.asarray(counts, dtype=np.float64)
    if weights.shape != (table.num_images,):
        raise ValueError(f"counts must have one entry per image ({table.num_images}), got shape {weights.shape}")
    per_cat = []
    for cat in table.categories.values():
        num_gt = float(np.dot(weights, cat.gt_per_image))
        if num_gt == 0:
            continue
        w = weights[cat.image_index]
        tp_cum = np.cumsum(cat.true_pos * w, axis=1)
        fp_cum = np.cumsum(cat.false_pos * w, axis=1)
        per_cat.append(_interpolated_precision(tp_cum, fp_cum, num_gt, table.recall_thresholds))
    if not per_cat:
        return {"AP": float("nan"), "AP50": float("nan"), "AP75": float("nan")}
    precision = np.stack(per_cat)  # (K, T, R)
    t50 = int(np.argmin(np.abs(table.iou_thresholds - 0.5)))
    t75 = int(np.argmin(np.abs(table.iou_thresholds - 0.75)))
    return {"AP": float(precision.mean() * 100), "AP50": float(precision[:, t50].mean() * 100),
            "AP75": float(precision[:, t75].mean() * 100)}


def resample_counts(num_images: int, num_resamples: int, seed: int = 0) -> np.ndarray:
    """``(num_resamples, num_images)`` draw counts: each row draws ``num_images`` images with replacement."""
    if num_resamples < 1 or num_images < 1:
        raise ValueError(f"need at least one image and one resample, got {num_images} and {num_resamples}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_images, np.full(num_images, 1.0 / num_images), size=num_resamples)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
