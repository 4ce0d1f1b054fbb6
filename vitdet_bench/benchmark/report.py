"""The benchmark's outputs: comparison table (Markdown, CSV, JSON), convergence plot, TIDE
comparison, complexity table, and ``report.md`` that puts them together with the configs used."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os

from tabulate import tabulate

from ..evaluation.tide import MAIN_ERRORS, SPECIAL_ERRORS, plot_tide_comparison, run_tide, tide_markdown
from .collect import METRICS, RESULTS_FILE, TASKS, RunResult

__all__ = ["comparison_rows", "tide_for_run", "write_report", "gt_json_for_run"]

logger = logging.getLogger("vitdet_bench.benchmark")


def _fmt(v, digits: int = 2):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"  # not measured, or NaN (COCO's APl on a split without large objects)
    if isinstance(v, float):
        return round(v, digits)
    return v


def comparison_rows(results: list[RunResult]) -> tuple[list[str], list[list]]:
    """The comparison table: box and mask APs, then training cost, one row per initialization."""
    headers = ["init", "status"] + [f"box {m}" for m in METRICS] + [f"mask {m}" for m in METRICS] + [
        "iters", "train time (min)", "s/iter", "peak mem (MB)", "params (M)", "backbone GFLOPs", "inference s/img"]
    rows = []
    for r in results:
        row = [r.name, r.status]
        for task in TASKS:
            row += [_fmt(r.metrics.get(task, {}).get(m)) for m in METRICS]
        row += [r.iterations, _fmt(r.train_time_s / 60 if r.train_time_s else None), _fmt(r.s_per_iter, 3),
                _fmt(r.peak_mem_mb, 0), _fmt(r.cost.get("params_m")), _fmt(r.cost.get("backbone_gflops")),
                _fmt(r.cost.get("inference_s_per_image"), 3)]
        rows.append(row)
    return headers, rows


def gt_json_for_run(run_dir: str) -> str:
    """The ground-truth json a run was evaluated on (from its config.yaml and the catalog)."""
    from ..config import LazyConfig
    from ..data.catalog import get_dataset_spec, register_coco_instances

    cfg = LazyConfig.load(os.path.join(run_dir, "config.yaml"))
    ds = cfg.dataloader.test.dataset
    if ds.get("json_file"):
        register_coco_instances(ds.names, ds.json_file, ds.image_root)
    return get_dataset_spec(ds.names).json_file


def tide_for_run(r: RunResult, plot_dir: str) -> dict | None:
    """TIDE of one run (cached in the run dir, keyed by the results file's content)."""
    results_json = os.path.join(r.run_dir, RESULTS_FILE)
    if r.status == "missing" or not os.path.isfile(results_json):
        return None
    with open(results_json, "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()
    cache = os.path.join(r.run_dir, "tide.json")
    if os.path.isfile(cache):
        with open(cache) as f:
            cached = json.load(f)
        if cached.get("results_sha1") == digest and os.path.isdir(plot_dir):
            return cached["tide"]
    tide = run_tide(gt_json_for_run(r.run_dir), results_json, plot_dir=plot_dir, name=r.name)
    with open(cache, "w") as f:
        json.dump({"results_sha1": digest, "tide": tide}, f, indent=1)
    return tide


def _convergence_plot(results: list[RunResult], path: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [r for r in results if r.curve]
    if not curves:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, task, title in zip(axes, TASKS, ("box AP", "mask AP")):
        for r in curves:
            xs = [p["iteration"] for p in r.curve]
            ys = [p.get(f"{task}/AP") for p in r.curve]
            ax.plot(xs, ys, marker="o", label=f"{r.name}{'' if r.status == 'complete' else ' (' + r.status + ')'}")
        ax.set_xlabel("training iterations")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.set_title(f"{title} during fine-tuning")
        r0 = next((r for r in curves if r.batch_size and r.train_images), None)
        if r0:
            per_epoch = r0.train_images / r0.batch_size
            sec = ax.secondary_xaxis("top", functions=(lambda x, k=per_epoch: x / k, lambda e, k=per_epoch: e * k))
            sec.set_xlabel("epochs")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(spec, results: list[RunResult], tide: bool = True) -> dict:
    """Write every output into ``spec.output_dir``; returns what it wrote and the TIDE numbers."""
    out = spec.output_dir
    os.makedirs(out, exist_ok=True)
    headers, rows = comparison_rows(results)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(tabulate(rows, headers=headers, tablefmt="github") + "\n")
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(headers)
        w.writerows(rows)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump([r.to_dict() for r in results], f, indent=1)
    convergence = _convergence_plot(results, os.path.join(out, "convergence.png"))

    tide_results: dict[str, dict] = {}
    tide_dir = os.path.join(out, "tide")
    if tide:
        for r in results:
            t = tide_for_run(r, os.path.join(tide_dir, r.name))
            if t is not None:
                tide_results[r.name] = t
        if tide_results:
            os.makedirs(tide_dir, exist_ok=True)
            plot_tide_comparison(tide_results, os.path.join(tide_dir, "tide_comparison.png"))
            with open(os.path.join(tide_dir, "tide.json"), "w") as f:
                json.dump(tide_results, f, indent=1)
            with open(os.path.join(tide_dir, "tide.md"), "w") as f:
                f.write(tide_markdown(tide_results))

    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(_report_markdown(spec, results, headers, rows, convergence, tide_results))
    return {"results": rows, "headers": headers, "tide": tide_results}


def _report_markdown(spec, results, headers, rows, convergence, tide_results) -> str:
    lines = [f"# Benchmark `{spec.name}`", ""]
    lines += [f"Benchmark file: `{spec.source_file}`; outputs in `{spec.output_dir}`.", ""]
    bad = [r for r in results if r.status != "complete"]
    if bad:
        lines += ["**Not complete:**", ""]
        lines += [f"- `{r.name}` ({r.status}): " + "; ".join(r.problems) for r in bad]
        lines.append("")
    lines += ["## Comparison (COCO metrics at the end of fine-tuning)", "",
              tabulate(rows, headers=headers, tablefmt="github"), "",
              "Also as `results.csv` and `results.json` (with the convergence points).", ""]
    if convergence:
        lines += ["## Convergence", "", "![convergence](convergence.png)", ""]
    if tide_results:
        lines += ["## TIDE error analysis", "",
                  f"dAP = AP50 gained by fixing each error type (tidecv). Main: {', '.join(MAIN_ERRORS)}; "
                  f"special: {', '.join(SPECIAL_ERRORS)}. Per-run figures in `tide/<run>/`.", "",
                  tide_markdown(tide_results), "![TIDE comparison](tide/tide_comparison.png)", ""]
    lines += ["## Complexity", ""]
    crow = [[r.name, _fmt(r.cost.get("params_m")), _fmt(r.cost.get("backbone_params_m")),
             _fmt(r.cost.get("backbone_gflops")), "x".join(map(str, r.cost.get("flops_input") or [])) or "-",
             _fmt(r.s_per_iter, 3), _fmt(r.cost.get("inference_s_per_image"), 3), _fmt(r.peak_mem_mb, 0)]
            for r in results]
    lines += [tabulate(crow, headers=["init", "params (M)", "backbone params (M)", "backbone GFLOPs", "FLOPs input",
                                      "train s/iter", "inference s/img", "peak mem (MB)"], tablefmt="github"), "",
              "FLOPs: fvcore, backbone + neck on one padded test image (one multiply-add = one flop). "
              "Train s/iter: median of the logged iteration times. Peak memory: CUDA max allocated, or on the CPU "
              "the process's max RSS, which only grows, so when the runner trains several runs in one process a "
              "later run's value includes the earlier ones. For the backbone variants' cost use `tools/benchmark_backbone.py`.", ""]
    lines += ["## Runs and configs", ""]
    for init, r in zip(spec.inits, results):
        lines.append(f"- **{init.name}**: detection config `{init.config}`; backbone: {init.source}; "
                     f"run dir `{r.run_dir}` (its `config.yaml` is the full config used)")
    lines.append("")
    return "\n".join(lines)
