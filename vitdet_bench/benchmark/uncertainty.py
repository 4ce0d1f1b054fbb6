"""How sure the comparison is: bootstrap confidence intervals per initialization and against random.

Every complete run's final detections are re-scored on resamples of the validation images
(:mod:`vitdet_bench.evaluation.bootstrap`); the same resamples serve every run, so differences
between initializations are paired (an image that is hard for one is hard for all). With several
fine-tuning seeds an initialization's statistic is the mean over its seeds, and each bootstrap
replicate also redraws the seeds with replacement (a two-level bootstrap: images, then seeds), so
the interval covers both the choice of validation images and run-to-run variation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..evaluation.bootstrap import match_table, percentile_interval, resample_counts, weighted_ap
from .collect import RESULTS_FILE, RunResult

__all__ = ["InitSummary", "summarize_inits", "iterations_to_reach"]

logger = logging.getLogger("vitdet_bench.benchmark")

TASKS = ("bbox", "segm")


@dataclass
class InitSummary:
    """One initialization over its complete runs (seeds).

    Attributes:
        name: the initialization.
        runs: names of the runs that entered (complete ones).
        ap: task -> mean AP over the seeds (each run's COCO AP on all validation images).
        std: task -> standard deviation over seeds (``None`` with one seed).
        ci: task -> ``(low, high)`` percentile bootstrap interval of ``ap``.
        delta: task -> ``ap`` minus random's (``None`` for random itself or without random).
        delta_ci: task -> interval of ``delta`` (paired bootstrap).
    """

    name: str
    runs: list[str]
    ap: dict[str, float] = field(default_factory=dict)
    std: dict[str, float | None] = field(default_factory=dict)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    delta: dict[str, float | None] = field(default_factory=dict)
    delta_ci: dict[str, tuple[float, float] | None] = field(default_factory=dict)

    def verdict(self, task: str = "bbox") -> str:
        """"better" / "worse" when the interval of the difference to random excludes 0, else "within"."""
        ci = self.delta_ci.get(task)
        if ci is None or any(math.isnan(v) for v in ci):
            return ""
        return "better" if ci[0] > 0 else "worse" if ci[1] < 0 else "within"


def _sha1(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def _bootstrap_run(r: RunResult, gt_json: str, counts: np.ndarray, key: dict) -> dict[str, np.ndarray]:
    """AP of one run on every resample (and on all images: last entry), cached in the run directory."""
    results = os.path.join(r.run_dir, RESULTS_FILE)
    key = {**key, "results_sha1": _sha1(results), "gt_json": os.path.abspath(gt_json)}
    cache = os.path.join(r.run_dir, "bootstrap.json")
    if os.path.isfile(cache):
        try:
            with open(cache, encoding="utf-8") as f:
                cached = json.load(f)
            if cached.get("key") == key:
                return {t: np.asarray(v, dtype=np.float64) for t, v in cached["ap"].items()}
        except (OSError, ValueError, KeyError):
            logger.warning("Ignoring an unreadable %s; recomputing", cache)
    with open(results, encoding="utf-8") as f:
        dets = json.load(f)
    out = {}
    image_ids = None
    for task in TASKS:
        table = match_table(gt_json, dets, task)
        if image_ids is None:
            image_ids = table.image_ids
        if table.num_images != counts.shape[1]:
            raise ValueError(f"{r.run_dir}: evaluated on {table.num_images} images, the others on {counts.shape[1]}")
        values = [weighted_ap(table, c)["AP"] for c in counts] + [weighted_ap(table)["AP"]]
        out[task] = np.asarray(values, dtype=np.float64)
    tmp = cache + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"key": key, "ap": {t: v.tolist() for t, v in out.items()}}, f)
    os.replace(tmp, cache)
    return out


def summarize_inits(results: list[RunResult], gt_json: str, num_images: int, resamples: int = 500,
                    level: float = 0.95, seed: int = 0, baseline: str = "random") -> list[InitSummary]:
    """Per-initialization mean AP, seed spread, bootstrap interval and paired difference to ``baseline``.

    Args:
        results: the collected runs (several per initialization with seeds); incomplete runs are
            left out.
        gt_json: the validation ground truth every run was evaluated on.
        num_images: number of validation images (resamples draw this many with replacement).
        resamples: bootstrap replicates.
        level: interval coverage (0.95).
        seed: seeds the resampling, so a report is reproducible.
        baseline: the initialization differences are taken against.
    """
    counts = resample_counts(num_images, resamples, seed)
    key = {"resamples": resamples, "seed": seed, "num_images": num_images}
    by_init: dict[str, list[RunResult]] = {}
    for r in results:
        if r.status == "complete":
            by_init.setdefault(r.init or r.name, []).append(r)
    rng = np.random.default_rng([seed, 1])
    stats: dict[str, dict[str, np.ndarray]] = {}
    summaries: dict[str, InitSummary] = {}
    for name, runs in by_init.items():
        per_run = [_bootstrap_run(r, gt_json, counts, key) for r in runs]
        s = InitSummary(name, [r.name for r in runs])
        # Which seed each replicate uses (with replacement); one seed: always that one.
        picks = rng.integers(0, len(runs), size=(resamples, len(runs)))
        stats[name] = {}
        for task in TASKS:
            full = np.array([v[task][-1] for v in per_run])
            boot = np.stack([v[task][:-1] for v in per_run])  # (seeds, resamples)
            replicate = boot[picks, np.arange(resamples)[:, None]].mean(axis=1)
            stats[name][task] = replicate
            s.ap[task] = float(full.mean())
            s.std[task] = float(full.std(ddof=1)) if len(full) > 1 else None
            s.ci[task] = percentile_interval(replicate, level)
        summaries[name] = s
    for name, s in summaries.items():
        for task in TASKS:
            if name == baseline or baseline not in summaries:
                s.delta[task], s.delta_ci[task] = None, None
                continue
            s.delta[task] = s.ap[task] - summaries[baseline].ap[task]
            s.delta_ci[task] = percentile_interval(stats[name][task] - stats[baseline][task], level)
    return list(summaries.values())


def iterations_to_reach(curve: list[dict], target: float, task: str = "bbox") -> float | None:
    """The first iteration at which a convergence curve reaches ``target`` AP, interpolating
    linearly between evaluations (``None`` if it never does; the first point counts from 0 AP at
    iteration 0)."""
    prev_it, prev_ap = 0, 0.0
    for p in curve:
        ap = p.get(f"{task}/AP")
        if ap is None or (isinstance(ap, float) and math.isnan(ap)):
            continue
        if ap >= target:
            if ap == prev_ap:
                return float(p["iteration"])
            return prev_it + (target - prev_ap) / (ap - prev_ap) * (p["iteration"] - prev_it)
        prev_it, prev_ap = p["iteration"], ap
    return None
