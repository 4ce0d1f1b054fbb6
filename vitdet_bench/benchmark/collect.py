"""Read finished (or unfinished) detection runs from their output directories.

A run directory is what ``tools/lazyconfig_train_net.py`` writes: ``config.yaml``,
``metrics.json`` (evaluations as ``bbox/AP`` …), ``inference/coco_instances_results.json``, and,
when the benchmark runner trained it, ``cost.json`` and ``run_info.json``. Nothing is dropped
silently: a run that is missing, unfinished or lacks a file gets a status saying which.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import asdict, dataclass, field

__all__ = ["RunResult", "collect_run", "METRICS", "TASKS"]

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
TASKS = ("bbox", "segm")
RESULTS_FILE = os.path.join("inference", "coco_instances_results.json")


@dataclass
class RunResult:
    """What one initialization's run produced (``status``: complete, partial or missing)."""

    name: str
    run_dir: str
    status: str = "missing"
    problems: list[str] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> metric -> value
    curve: list[dict] = field(default_factory=list)  # [{"iteration", "epoch", "bbox/AP", "segm/AP"}]
    iterations: int | None = None
    max_iter: int | None = None
    batch_size: int | None = None
    train_images: int | None = None
    train_time_s: float | None = None
    s_per_iter: float | None = None
    peak_mem_mb: float | None = None
    cost: dict = field(default_factory=dict)  # params, gflops, inference s / image
    init_checkpoint: str = ""
    config_file: str = ""
    init: str = ""  # the initialization (name without the seed)
    seed: int = 0  # index of the fine-tuning seed (runs/<init> is 0)
    pretrain: dict = field(default_factory=dict)  # what the backbone saw before (Runner.pretrain_info)
    device: str = ""  # train.device of the config
    device_info: str = ""  # what it ran on (processor / GPU, threads, torch), from run_info.json

    def to_dict(self) -> dict:
        return asdict(self)


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _read_metrics(path: str) -> list[dict]:
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                # A run killed mid-write leaves a truncated last line.
                raise ValueError(f"{path}: line {n} is not valid JSON (truncated file?)") from None
    return rows


def collect_run(name: str, run_dir: str) -> RunResult:
    """Collect one run; problems are listed in ``problems`` and reflected in ``status``."""
    res = RunResult(name=name, run_dir=run_dir, init=name)
    if not os.path.isdir(run_dir):
        res.problems.append(f"no run directory {run_dir}")
        return res
    config_path = os.path.join(run_dir, "config.yaml")
    if os.path.isfile(config_path):
        from ..config import LazyConfig

        cfg = LazyConfig.load(config_path)
        res.max_iter = int(cfg.train.max_iter)
        res.device = str(cfg.train.get("device", ""))
        res.batch_size = int(cfg.dataloader.train.total_batch_size) * int(cfg.train.get("grad_accum_steps", 1))
        res.init_checkpoint = str(cfg.train.get("init_checkpoint") or "")
    else:
        res.problems.append("config.yaml missing")
    metrics_path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(metrics_path):
        res.problems.append("metrics.json missing (the run never logged)")
        return res
    try:
        rows = _read_metrics(metrics_path)
    except ValueError as e:
        res.problems.append(str(e))
        res.status = "partial"
        return res
    info_path = os.path.join(run_dir, "run_info.json")
    info = _read_json(info_path) if os.path.isfile(info_path) else {}
    res.train_images = info.get("train_images")
    res.config_file = info.get("config_file", "")
    res.device_info = info.get("device_info", "")
    iters = [r["iteration"] for r in rows if "iteration" in r]
    res.iterations = max(iters) + 1 if iters else 0
    times = [r["time"] for r in rows if "time" in r]
    res.s_per_iter = statistics.median(times) if times else None
    mems = [r["max_mem_mb"] for r in rows if "max_mem_mb" in r]
    res.peak_mem_mb = max(mems) if mems else None
    res.train_time_s = info.get("train_time_s") or (res.s_per_iter * res.iterations if res.s_per_iter else None)
    for r in rows:
        if "bbox/AP" in r:
            point = {"iteration": r["iteration"] + 1, "bbox/AP": r["bbox/AP"], "segm/AP": r.get("segm/AP")}
            if res.batch_size and res.train_images:
                point["epoch"] = round(point["iteration"] * res.batch_size / res.train_images, 3)
            res.curve.append(point)
    evals = [r for r in rows if "bbox/AP" in r]
    if evals:
        last = evals[-1]
        for task in TASKS:
            vals = {m: last.get(f"{task}/{m}") for m in METRICS}
            if any(v is not None for v in vals.values()):
                res.metrics[task] = vals
    if res.max_iter is not None and res.iterations < res.max_iter:
        res.problems.append(f"trained {res.iterations} of {res.max_iter} iterations")
    if not evals or (res.max_iter is not None and evals[-1]["iteration"] + 1 < res.max_iter):
        res.problems.append("no final evaluation in metrics.json")
    if not os.path.isfile(os.path.join(run_dir, RESULTS_FILE)):
        res.problems.append(f"{RESULTS_FILE} missing")
    cost_path = os.path.join(run_dir, "cost.json")
    if os.path.isfile(cost_path):
        res.cost = _read_json(cost_path)
    res.status = "complete" if not res.problems else "partial"
    return res
