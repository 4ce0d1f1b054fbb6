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

from omegaconf import OmegaConf

from .search import find_drop_path_key

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
    eval_dataset: str = ""  # the dataset the final APs score (dataloader.test)
    curve_dataset: str = ""  # the dataset of the convergence curve (train.eval_subset, else eval_dataset)
    hyper: dict = field(default_factory=dict)  # lr (at the config's reference batch), weight_decay, drop_path

    def to_dict(self) -> dict:
        return asdict(self)


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _read_metrics(path: str) -> tuple[list[dict], list[str]]:
    """The rows of ``metrics.json`` and a problem for each line that is not a JSON object (a run
    killed mid-write leaves a cut last line); the rows around a bad line are kept."""
    rows, problems = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict) and isinstance(row.get("iteration"), int):
                rows.append(row)
            else:
                problems.append(f"{path}: line {n} is not valid JSON with an iteration (truncated file?); skipped it")
    return rows, problems


def _read_config(res: RunResult, path: str) -> None:
    """Fill what ``config.yaml`` says (schedule, batch, init); a problem, not a crash, when it is
    cut or holds a bad value."""
    from ..config import LazyConfig

    try:
        cfg = LazyConfig.load(path)
        res.max_iter = int(cfg.train.max_iter)
        res.device = str(cfg.train.get("device", ""))
        res.batch_size = int(cfg.dataloader.train.total_batch_size) * int(cfg.train.get("grad_accum_steps", 1))
        res.init_checkpoint = str(cfg.train.get("init_checkpoint") or "")
        res.eval_dataset = str(cfg.dataloader.test.dataset.names)
        res.curve_dataset = str(cfg.train.get("eval_subset") or res.eval_dataset)
        key = find_drop_path_key(cfg.model)
        res.hyper = {"lr": float(cfg.optimizer.lr), "weight_decay": float(cfg.optimizer.weight_decay),
                     "drop_path": float(OmegaConf.select(cfg, key)) if key else None}
    except Exception as e:  # yaml errors, missing keys, values that are not numbers
        res.max_iter = res.batch_size = None
        first = str(e).splitlines()[0] if str(e) else ""
        res.problems.append(f"{path} is unreadable ({type(e).__name__}: {first})")


def _check_results_file(path: str) -> str | None:
    """Why the COCO results file cannot be used (TIDE reads it), or ``None``."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        return f"{path} is not valid JSON ({e}; truncated?)"
    if not isinstance(data, list):
        return f"{path} holds a {type(data).__name__}, not a list of detections"
    return None


def collect_run(name: str, run_dir: str) -> RunResult:
    """Collect one run; problems are listed in ``problems`` and reflected in ``status``.

    Never raises for what is in the directory: a cut, unreadable or inconsistent file becomes a
    problem naming the file, and the run is ``partial`` (``missing`` without a directory or
    ``metrics.json``), so one bad run never stops the report on the others.
    """
    res = RunResult(name=name, run_dir=run_dir, init=name)
    if not os.path.isdir(run_dir):
        res.problems.append(f"no run directory {run_dir}")
        return res
    config_path = os.path.join(run_dir, "config.yaml")
    if os.path.isfile(config_path):
        _read_config(res, config_path)
    else:
        res.problems.append("config.yaml missing")
    metrics_path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(metrics_path):
        res.problems.append("metrics.json missing (the run never logged)")
        return res
    rows, bad_lines = _read_metrics(metrics_path)
    res.problems += bad_lines
    info, cost = {}, {}
    for path, target in ((os.path.join(run_dir, "run_info.json"), info), (os.path.join(run_dir, "cost.json"), cost)):
        if os.path.isfile(path):
            try:
                target.update(_read_json(path))
            except (OSError, ValueError, TypeError) as e:
                res.problems.append(f"{path} is unreadable ({e}); its values are left out")
    res.train_images = info.get("train_images")
    res.config_file = info.get("config_file", "")
    res.device_info = info.get("device_info", "")
    iters = [r["iteration"] for r in rows]
    res.iterations = max(iters) + 1 if iters else 0
    times = [r["time"] for r in rows if isinstance(r.get("time"), (int, float))]
    res.s_per_iter = statistics.median(times) if times else None
    mems = [r["max_mem_mb"] for r in rows if isinstance(r.get("max_mem_mb"), (int, float))]
    res.peak_mem_mb = max(mems) if mems else None
    res.train_time_s = info.get("train_time_s") or (res.s_per_iter * res.iterations if res.s_per_iter else None)
    # The curve: every evaluation of train.eval_subset when the run had one (curve/* keys, the final
    # evaluation included), else every evaluation of the test set.
    prefix = "curve/" if any("curve/bbox/AP" in r for r in rows) else ""
    for r in rows:
        if f"{prefix}bbox/AP" in r:
            point = {"iteration": r["iteration"] + 1, "bbox/AP": r[f"{prefix}bbox/AP"],
                     "segm/AP": r.get(f"{prefix}segm/AP")}
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
    results_path = os.path.join(run_dir, RESULTS_FILE)
    if not os.path.isfile(results_path):
        res.problems.append(f"{RESULTS_FILE} missing")
    else:
        why = _check_results_file(results_path)
        if why:
            res.problems.append(why)
    res.cost = cost
    res.status = "complete" if not res.problems else "partial"
    return res
