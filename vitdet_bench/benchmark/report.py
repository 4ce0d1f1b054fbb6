"""The benchmark's outputs: the per-initialization summary with confidence intervals and the
verdict against random (``summary.md/.csv/.json``), the per-run table (``results.md/.csv/.json``),
convergence plot and table, TIDE comparison, complexity and training profile, and ``report.md``
that puts them together with the configs used and says in words what the table shows."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import platform
from dataclasses import asdict

import numpy as np
from tabulate import tabulate

from ..evaluation.tide import MAIN_ERRORS, SPECIAL_ERRORS, plot_tide_comparison, run_tide, tide_markdown
from .collect import METRICS, RESULTS_FILE, TASKS, RunResult
from .report_sections import (
    headline_probe,
    pretrain_markdown,
    probe_cell,
    probe_markdown,
    search_cell,
    search_markdown,
    stages_markdown,
)
from .uncertainty import InitSummary, iterations_to_reach, summarize_inits

BOOTSTRAP = {"resamples": 500, "level": 0.95, "seed": 0}

__all__ = ["comparison_rows", "summary_rows", "tide_for_run", "write_report", "gt_json_for_run"]

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


def _ci(v: float | None, ci: tuple[float, float] | None, std: float | None = None, signed: bool = False) -> str:
    """``12.34 [11.02, 13.50]`` (``± std`` with seeds); ``-`` when missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    text = f"{v:+.2f}" if signed else f"{v:.2f}"
    if std is not None:
        text += f" ± {std:.2f}"
    if ci is not None and not any(math.isnan(x) for x in ci):
        text += f" [{ci[0]:{'+' if signed else ''}.2f}, {ci[1]:{'+' if signed else ''}.2f}]"
    return text


def _pretrain_cell(info: dict) -> str:
    if not info:
        return "-"
    images, epochs = info.get("images_seen"), info.get("epochs")
    parts = [(f"{images / 1000:.1f}k images" if images >= 10000 else f"{images} images") if images else "",
             (f"{epochs:.2g} ep" if epochs < 10 else f"{epochs:.0f} ep") if epochs else ""]
    return ", ".join(p for p in parts if p) or "-"


def _curve_target(results: list[RunResult], baseline: str) -> float | None:
    """Random's final box AP on the curve's images (the last curve point, mean over its seeds)."""
    last = [r.curve[-1]["bbox/AP"] for r in results if r.init == baseline and r.status == "complete" and r.curve]
    last = [v for v in last if v is not None and not math.isnan(v)]
    return float(np.mean(last)) if last else None


def summary_rows(results: list[RunResult], summaries: list[InitSummary], baseline: str = "random",
                 probes: dict[str, str] | None = None,
                 searches: dict[str, str] | None = None) -> tuple[list[str], list[list]]:
    """One row per initialization: APs with intervals, the difference to random, the probe of its
    encoder, the lr / wd / drop path it was fine-tuned with, pre-training seen, and the iterations
    it needs to reach random's final box AP (on the convergence curve's images)."""
    by_name = {s.name: s for s in summaries}
    target = _curve_target(results, baseline) if baseline in by_name else None
    headers = ["init", "runs", "box AP [95% CI]", "mask AP [95% CI]", f"box AP - {baseline} [95% CI]",
               f"mask AP - {baseline} [95% CI]", "verdict (box)", "probe top-1 [95% CI], vs random",
               "chosen lr / wd / dp", "pre-training seen", f"iters to {baseline}'s final box AP", "fine-tune iters"]
    probes, searches = probes or {}, searches or {}
    rows, seen = [], []
    for r in results:
        if r.init in seen:
            continue
        seen.append(r.init)
        s = by_name.get(r.init)
        runs = [x for x in results if x.init == r.init]
        if s is None:
            rows.append([r.init, f"0 of {len(runs)} complete"] + ["-"] * 5 + [
                probes.get(r.init, "-"), searches.get(r.init, "-"), _pretrain_cell(r.pretrain), "-", _fmt(r.max_iter)])
            continue
        reach = ([iterations_to_reach(x.curve, target) for x in runs if x.status == "complete"]
                 if target is not None else [])
        reach_cell = "-"
        if reach and r.init != baseline:
            done = [v for v in reach if v is not None]
            reach_cell = (f"{np.mean(done):.0f}" if len(done) == len(reach) else
                          f"not reached ({len(reach) - len(done)} of {len(reach)} runs)") if done else "not reached"
        rows.append([
            r.init, f"{len(s.runs)} of {len(runs)} complete",
            _ci(s.ap.get("bbox"), s.ci.get("bbox"), s.std.get("bbox")),
            _ci(s.ap.get("segm"), s.ci.get("segm"), s.std.get("segm")),
            _ci(s.delta.get("bbox"), s.delta_ci.get("bbox"), signed=True),
            _ci(s.delta.get("segm"), s.delta_ci.get("segm"), signed=True),
            s.verdict("bbox") or "-", probes.get(r.init, "-"), searches.get(r.init, "-"), _pretrain_cell(r.pretrain),
            reach_cell, _fmt(r.max_iter),
        ])
    return headers, rows


def _verdict_sentences(summaries: list[InitSummary], level: float, baseline: str = "random") -> list[str]:
    """The comparison in words, per initialization and task."""
    lines = []
    pct = f"{level:.0%}"
    for s in summaries:
        if s.name == baseline:
            continue
        parts = []
        for task, label in (("bbox", "box AP"), ("segm", "mask AP")):
            d, ci = s.delta.get(task), s.delta_ci.get(task)
            if d is None or ci is None or any(math.isnan(x) for x in ci):
                continue
            v = s.verdict(task)
            if v == "better":
                parts.append(f"beats {baseline} by {d:+.2f} {label} ({pct} CI [{ci[0]:+.2f}, {ci[1]:+.2f}], "
                             "beyond the uncertainty)")
            elif v == "worse":
                parts.append(f"is below {baseline} by {d:+.2f} {label} ({pct} CI [{ci[0]:+.2f}, {ci[1]:+.2f}], "
                             "beyond the uncertainty)")
            else:
                parts.append(f"differs from {baseline} by {d:+.2f} {label}, within the uncertainty "
                             f"({pct} CI [{ci[0]:+.2f}, {ci[1]:+.2f}] includes 0)")
        if parts:
            lines.append(f"- **{s.name}** " + "; ".join(parts) + ".")
        elif baseline in {x.name for x in summaries}:
            lines.append(f"- **{s.name}**: no difference to {baseline} could be computed.")
    if lines and baseline not in {x.name for x in summaries}:
        lines.insert(0, f"(No complete `{baseline}` run: no difference can be stated.)")
    return lines


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
    try:
        tide = run_tide(gt_json_for_run(r.run_dir), results_json, plot_dir=plot_dir, name=r.name)
    except Exception as e:  # one run's bad files must not stop the report on the others
        logger.warning("TIDE of %s failed: %s: %s", r.name, type(e).__name__, e)
        first = str(e).splitlines()[0] if str(e) else ""
        r.problems.append(f"TIDE failed on {results_json}: {type(e).__name__}: {first}")
        r.status = "partial"
        return None
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


def _image_count(json_file: str) -> int:
    with open(json_file, encoding="utf-8") as f:
        return len(json.load(f)["images"])


def evaluation_sets(results: list[RunResult]) -> dict:
    """What the APs are computed on: the final evaluation's dataset and image count (the bootstrap's
    resampling units) and the convergence curve's (``train.eval_subset``, or the same)."""
    from ..data.catalog import get_dataset_spec

    r = next((r for r in results if r.status == "complete"), None)
    if r is None:
        return {}
    out = {"val_dataset": r.eval_dataset, "val_images": _image_count(gt_json_for_run(r.run_dir)),
           "curve_dataset": r.curve_dataset or r.eval_dataset}
    try:
        out["curve_images"] = (out["val_images"] if out["curve_dataset"] == r.eval_dataset else
                               _image_count(get_dataset_spec(out["curve_dataset"]).json_file))
    except (KeyError, OSError, ValueError):
        out["curve_images"] = None
    return out


def _uncertainty(spec, results: list[RunResult]) -> list[InitSummary]:
    """Bootstrap summaries of the complete runs (empty when none is complete or the runs were
    evaluated on different validation sets)."""
    complete = [r for r in results if r.status == "complete"]
    if not complete:
        return []
    gts = {gt_json_for_run(r.run_dir) for r in complete}
    if len(gts) != 1:
        logger.warning("Runs were evaluated on different ground truth (%s): no confidence intervals", sorted(gts))
        return []
    gt = gts.pop()
    b = getattr(spec, "bootstrap", None) or {"resamples": 500, "level": 0.95, "seed": 0}
    return summarize_inits(results, gt, _image_count(gt), resamples=int(b["resamples"]), level=float(b["level"]),
                           seed=int(b["seed"]))


def _probe_tables(spec, extras: dict) -> tuple[dict, dict[str, str], dict]:
    """Intervals of every probe result (random as the baseline), their notes, and the probe's facts."""
    from ..evaluation.probe import probe_intervals

    probes = extras.get("probes") or {}
    done = {name: r for name, (r, _) in probes.items() if r is not None}
    notes = {name: note for name, (_, note) in probes.items() if note}
    b = getattr(spec, "bootstrap", None) or BOOTSTRAP
    intervals = probe_intervals(done, resamples=max(int(b["resamples"]), 1000), level=float(b["level"]),
                                seed=int(b["seed"])) if done else {}
    p = getattr(spec, "probe", None)
    info = {}
    if p is not None:
        info = {"train": p.train if p.dataset == "demo" else f"{p.train} per class",
                "test": next(iter(done.values())).num_test if done else p.test,
                "source": "the demo generator's probe set: object-centric images of the pool's kind, none of them a "
                          "pre-training or detection image" if p.dataset == "demo" else f"{p.root}",
                "level": float(b["level"])}
    return intervals, notes, info


def _write_table(path_stem: str, headers: list[str], rows: list[list]) -> None:
    with open(path_stem + ".md", "w") as f:
        f.write(tabulate(rows, headers=headers, tablefmt="github") + "\n")
    with open(path_stem + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(headers)
        w.writerows(rows)


def write_report(spec, results: list[RunResult], tide: bool = True, elapsed_s: float | None = None,
                 extras: dict | None = None) -> dict:
    """Write every output into ``spec.output_dir``; returns what it wrote, the TIDE numbers and
    the per-initialization summaries. ``extras`` (:meth:`Runner.collect_extras`): the probes, the
    searches, the pre-training steps and the stage times."""
    extras = extras or {}
    out = spec.output_dir
    os.makedirs(out, exist_ok=True)
    headers, rows = comparison_rows(results)
    _write_table(os.path.join(out, "results"), headers, rows)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump([r.to_dict() for r in results], f, indent=1)
    summaries = _uncertainty(spec, results)
    intervals, notes, probe_info = _probe_tables(spec, extras)
    searches = extras.get("searches") or {}
    s_headers, s_rows = summary_rows(results, summaries,
                                     probes={i: probe_cell(intervals, i, notes) for i in {r.init for r in results}},
                                     searches={r.init: search_cell(searches.get(r.init), r.hyper) for r in results
                                               if r.seed == 0})
    _write_table(os.path.join(out, "summary"), s_headers, s_rows)
    sets = evaluation_sets(results)
    by_init = []
    for x in summaries:
        entry = asdict(x)
        entry["search"] = searches.get(x.name)
        entry["probe"] = intervals.get(x.name)
        by_init.append(entry)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"bootstrap": getattr(spec, "bootstrap", None), "evaluation": sets,
                   "search_protocol": spec.search.describe() if getattr(spec, "search", None) else None,
                   "probe": {"headline": headline_probe(intervals), **probe_info} if intervals else None,
                   "inits": by_init,
                   "searches": {k: v for k, v in searches.items() if v and k not in {x.name for x in summaries}},
                   "stages": extras.get("stages") or []}, f, indent=1)
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

    sections = (probe_markdown(intervals, notes, probe_info)
                + search_markdown(searches, out, resolve_device_name(spec))
                + pretrain_markdown(extras.get("pretrain_steps") or [], out)
                + stages_markdown(extras.get("stages") or [], getattr(spec, "concurrent_runs", 1)))
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(_report_markdown(spec, results, headers, rows, convergence, tide_results, summaries,
                                 (s_headers, s_rows), elapsed_s, sets, sections))
    return {"results": rows, "headers": headers, "tide": tide_results, "summaries": summaries,
            "summary_headers": s_headers, "summary_rows": s_rows, "probe_intervals": intervals, "evaluation": sets}


def resolve_device_name(spec) -> str:
    """"cuda" or "cpu": what the benchmark trains on (for the search's cost unit)."""
    from .spec import resolve_benchmark_device

    try:
        return resolve_benchmark_device(getattr(spec, "device", "auto"))
    except ValueError:
        return "cpu"


def _environment(results: list[RunResult]) -> str:
    """Where the runs trained: their recorded device descriptions, else this machine's."""
    devices = sorted({r.device_info for r in results if getattr(r, "device_info", "")})
    if devices:
        return "; ".join(devices)
    import torch

    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def _convergence_rows(results: list[RunResult]) -> tuple[list[str], list[list]]:
    iters = sorted({p["iteration"] for r in results for p in r.curve})
    headers = ["run"] + [f"box / mask AP @{i}" for i in iters]
    rows = []
    for r in results:
        at = {p["iteration"]: p for p in r.curve}
        rows.append([r.name] + [f"{_fmt(at[i].get('bbox/AP'))} / {_fmt(at[i].get('segm/AP'))}" if i in at else "-"
                                for i in iters])
    return headers, rows


def _profile_markdown(results: list[RunResult]) -> list[str]:
    prof = next((r.cost.get("train_profile") for r in results if (r.cost or {}).get("train_profile")), None)
    if not prof:
        return []
    run = next(r.name for r in results if (r.cost or {}).get("train_profile"))
    lines = [f"### Where training time goes ({run}'s config, {prof['steps']} steps at batch {prof['batch_size']}, "
             f"{prof['device']}, torch.profiler)", ""]
    lines += [tabulate([[x["stage"], f"{x['s_per_iter']:.4f}", f"{x['percent']:.1f}"] for x in prof["stages"]],
                       headers=["stage", "s / iter", "%"], tablefmt="github"), ""]
    lines += [tabulate([[x["op"], f"{x['self_s_per_iter']:.4f}", f"{x['percent']:.1f}", f"{x['calls_per_iter']:.0f}"]
                        for x in prof["ops"]], headers=["operator", "self s / iter", "% of op time", "calls / iter"],
                       tablefmt="github"), ""]
    return lines


def _report_markdown(spec, results, headers, rows, convergence, tide_results, summaries, summary_table,
                     elapsed_s, sets: dict | None = None, sections: list[str] | None = None) -> str:
    b = getattr(spec, "bootstrap", None) or {"resamples": 500, "level": 0.95, "seed": 0}
    lines = [f"# Benchmark `{spec.name}`", ""]
    profile = getattr(spec, "profile", "") or "custom"
    lines += [f"Benchmark file: `{spec.source_file}` (profile: {profile}); outputs in `{spec.output_dir}`.",
              f"Trained on: {_environment(results)}." + (f" Wall time of this invocation: {elapsed_s / 60:.1f} min."
                                                        if elapsed_s else ""), ""]
    bad = [r for r in results if r.status != "complete"]
    if bad:
        lines += ["**Not complete:**", ""]
        lines += [f"- `{r.name}` ({r.status}): " + "; ".join(r.problems) for r in bad]
        lines.append("")
    sets = sets or {}
    search = getattr(spec, "search", None)
    if search is not None:
        lines += [f"Tuning protocol: {search.describe()}.", ""]
    lines += ["## Which initialization is best", "",
              tabulate(summary_table[1], headers=summary_table[0], tablefmt="github"), ""]
    on = (f"the {sets['val_images']} images of `{sets['val_dataset']}`" if sets.get("val_images")
          else "the validation images")
    curve = (f" The convergence curve and the iterations to random's final box AP are on the "
             f"{sets['curve_images']} images of `{sets['curve_dataset']}` (every evaluation scores them; the final "
             f"one also scores all of `{sets['val_dataset']}`)." if sets.get("curve_dataset") not in
             (None, sets.get("val_dataset")) else "")
    lines += [f"Each AP is the final COCO AP (mean over seeds, ± their standard deviation when there are several) with "
              f"a {float(b['level']):.0%} percentile bootstrap interval over {on} ({int(b['resamples'])} "
              f"resamples, seed {int(b['seed'])}; with several seeds each replicate also redraws the seeds). "
              "Differences to random are paired: every initialization is scored on the same resamples. "
              "A verdict is `better` or "
              "`worse` when the interval of the difference excludes 0, `within` when it does not. The probe column: "
              "top-1 accuracy of the frozen encoder (section below), its interval and its difference to the random "
              "encoder's, with whether it is `above random`. Then the lr / weight decay / drop path the run was "
              "fine-tuned with (the search's choice, or the recipe's), the images the backbone was pre-trained on "
              "(and epochs over its data), and the fine-tuning iterations it needed to reach random's final box AP "
              "(linear between evaluations; the paper's convergence comparison)." + curve, ""]
    words = _verdict_sentences(summaries, float(b["level"]))
    if words:
        lines += ["In words:", ""] + words + [""]
    lines += list(sections or [])
    lines += ["## All runs (COCO metrics at the end of fine-tuning)", "",
              tabulate(rows, headers=headers, tablefmt="github"), "",
              "Also as `results.csv` and `results.json` (with the convergence points), and the summary as "
              "`summary.md/.csv/.json`.", ""]
    if convergence:
        c_headers, c_rows = _convergence_rows(results)
        lines += ["## Convergence", "", "![convergence](convergence.png)", "",
                  tabulate(c_rows, headers=c_headers, tablefmt="github"), ""]
    if tide_results:
        lines += ["## TIDE error analysis", "",
                  f"dAP = AP50 gained by fixing each error type (tidecv). Main: {', '.join(MAIN_ERRORS)}; "
                  f"special: {', '.join(SPECIAL_ERRORS)}. Per-run figures in `tide/<run>/`.", "",
                  tide_markdown(tide_results), "![TIDE comparison](tide/tide_comparison.png)", ""]
    lines += ["## Complexity", ""]
    crow = [[r.name, _fmt(r.cost.get("params_m")), _fmt(r.cost.get("backbone_params_m")),
             _fmt(r.cost.get("backbone_gflops")), "x".join(map(str, r.cost.get("flops_input") or [])) or "-",
             _fmt(r.s_per_iter, 3), _fmt(r.cost.get("inference_s_per_image"), 3), _fmt(r.peak_mem_mb, 0)]
            for r in results if r.cost or r.s_per_iter]
    lines += [tabulate(crow, headers=["run", "params (M)", "backbone params (M)", "backbone GFLOPs", "FLOPs input",
                                      "train s/iter", "inference s/img", "peak mem (MB)"], tablefmt="github"), "",
              "FLOPs: fvcore, backbone + neck on one padded test image (one multiply-add = one flop). "
              "Train s/iter: median of the logged iteration times. Peak memory: CUDA max allocated, or on the CPU "
              "the process's max RSS, which only grows, so when the runner trains several runs in one process a "
              "later run's value includes the earlier ones. For the backbone variants' cost use "
              "`tools/benchmark_backbone.py`.", ""]
    lines += _profile_markdown(results)
    lines += ["## Runs and configs", ""]
    for init in spec.inits:
        dirs = [r.run_dir for r in results if r.init == init.name]
        lines.append(f"- **{init.name}**: detection config `{init.config}`; backbone: {init.source}; "
                     f"run dir{'s' if len(dirs) > 1 else ''} {', '.join(f'`{d}`' for d in dirs)} (each `config.yaml` "
                     "is the full config used)")
    lines.append("")
    return "\n".join(lines)
