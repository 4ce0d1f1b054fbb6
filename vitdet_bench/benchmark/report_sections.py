"""The report's sections on what came before fine-tuning and how it was chosen: the representation
probe of every initialization, the tuning search (grids as tables and heat maps, the choice), the
pre-training runs (images / s, images and epochs seen, loss curves) and the wall time per stage."""

from __future__ import annotations

import json
import math
import os

from tabulate import tabulate

__all__ = ["HEADLINE_PROBES", "pretrain_info_from_dir", "pretrain_markdown", "probe_cell", "probe_markdown",
           "search_cell", "search_markdown", "stages_markdown"]

HEADLINE_PROBES = ("linear/cls", "linear/mean", "knn/cls", "knn/mean")
PROBE_NAMES = {"knn/mean": "k-NN, mean-pooled", "knn/cls": "k-NN, cls token", "linear/mean": "linear, mean-pooled",
               "linear/cls": "linear, cls token"}


def _interval(v: float, ci, signed: bool = False) -> str:
    fmt = "+.1f" if signed else ".1f"
    if ci is None or any(math.isnan(x) for x in ci):
        return format(v, fmt)
    return f"{v:{fmt}} [{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def headline_probe(intervals: dict[str, dict]) -> str | None:
    """The probe the main table shows: the first of :data:`HEADLINE_PROBES` every encoder has."""
    for name in HEADLINE_PROBES:
        if intervals and all(name in rows for rows in intervals.values()):
            return name
    return None


def probe_cell(intervals: dict[str, dict], init: str, notes: dict[str, str]) -> str:
    """``"71.2 [68.3, 74.0], +20.1 [16.0, 24.2] vs random: above random"`` for the main table."""
    name = headline_probe(intervals)
    row = intervals.get(init, {}).get(name) if name else None
    if row is None:
        return f"- ({notes[init]})" if notes.get(init) else "-"
    text = _interval(row["top1"], row["ci"])
    if row["delta"] is not None:
        text += f", {_interval(row['delta'], row['delta_ci'], signed=True)} vs random: {row['verdict']}"
    return text


def probe_markdown(intervals: dict[str, dict], notes: dict[str, str], info: dict) -> list[str]:
    """The probe section: every probe of every encoder with its interval and the paired difference."""
    if not intervals:
        return []
    names = [n for n in ("knn/mean", "knn/cls", "linear/mean", "linear/cls") if any(n in r for r in intervals.values())]
    rows = []
    for init, probes in intervals.items():
        row = [init]
        for name in names:
            r = probes.get(name)
            if r is None:
                row.append("-")
                continue
            cell = _interval(r["top1"], r["ci"])
            if r["delta"] is not None:
                cell += f"; {_interval(r['delta'], r['delta_ci'], signed=True)}: {r['verdict']}"
            row.append(cell)
        rows.append(row)
    headline = headline_probe(intervals)
    lines = ["## Did pre-training learn? (representation probe)", "",
             f"Top-1 accuracy (%) of each frozen encoder on {info.get('test')} labelled probe images that no method "
             f"trained on ({info.get('source')}), with a {info.get('level', 0.95):.0%} bootstrap interval over those "
             f"images and the paired difference to the random encoder. Probes: k-NN (DINO's: k = 20, cosine, "
             f"temperature 0.07) and a linear classifier (logistic regression on standardised features), both "
             f"fitted on {info.get('train')} probe training images; features are the last block's patch tokens "
             f"after the final norm, mean-pooled, and the cls token after the final norm. The main table shows "
             f"`{headline}`. Each encoder is the ViT its detection config builds, loaded as fine-tuning loads it. "
             f"`random` is the detector's own random initialization, not each method's: a method's untrained "
             f"encoder can already differ from it (MAE's and MoCo v3's fixed 2-D sin-cos positions move the "
             f"mean-pooled probes a few points after almost no training), so read `above random` with its margin "
             f"and the pre-training loss curve below.", "",
             tabulate(rows, headers=["init"] + [PROBE_NAMES[n] for n in names], tablefmt="github"), ""]
    extra = [f"- `{init}`: {note}" for init, note in notes.items() if note]
    return lines + (["Notes:", ""] + extra + [""] if extra else [])


def search_cell(search: dict | None, hyper: dict | None = None) -> str:
    """``"0.0008 / 0.1 / 0 (search)"``: the lr / weight decay / drop path the final run used, chosen
    by the search or its recipe's (``hyper``: read from the run's config), for the main table."""
    chosen = (search or {}).get("chosen")
    if search and not chosen:
        return "search incomplete"
    values, origin = (chosen, "search") if chosen else (hyper or {}, "recipe")
    if not values or values.get("lr") is None:
        return "-"
    dp = values.get("drop_path")
    return f"{values['lr']:.3g} / {values['weight_decay']:.3g} / {'-' if dp is None else format(dp, 'g')} ({origin})"


def _heatmap(points: list[dict], path: str, title: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = [p for p in points if p["stage"] == "grid" and p["box_ap"] is not None]
    if not grid:
        return None
    lrs = sorted({p["lr"] for p in grid})
    wds = sorted({p["weight_decay"] for p in grid})
    values = np.full((len(wds), len(lrs)), np.nan)
    for p in grid:  # several seeds: their mean
        i, j = wds.index(p["weight_decay"]), lrs.index(p["lr"])
        values[i, j] = p["box_ap"] if np.isnan(values[i, j]) else (values[i, j] + p["box_ap"]) / 2
    fig, ax = plt.subplots(figsize=(1.3 * len(lrs) + 2, 1.0 * len(wds) + 1.6))
    im = ax.imshow(values, cmap="viridis", origin="lower", aspect="auto")
    ax.set_xticks(range(len(lrs)), [f"{v:.2g}" for v in lrs])
    ax.set_yticks(range(len(wds)), [f"{v:.2g}" for v in wds])
    ax.set_xlabel("learning rate")
    ax.set_ylabel("weight decay")
    for i in range(len(wds)):
        for j in range(len(lrs)):
            if not np.isnan(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(im, ax=ax, label="box AP (selection split)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def search_markdown(searches: dict[str, dict], out_dir: str, device: str) -> list[str]:
    """Per init: the grid as a table and a heat map, the drop-path stage, the choice and the cost."""
    done = {k: v for k, v in searches.items() if v}
    if not done:
        return []
    protocol = next(iter(done.values()))["protocol"]
    lines = ["## How each initialization was tuned (search)", "", f"Protocol: {protocol}.", ""]
    unit, scale = ("GPU hours", 3600.0) if device == "cuda" else ("CPU minutes", 60.0)
    os.makedirs(os.path.join(out_dir, "search"), exist_ok=True)
    for init, s in done.items():
        points = s["points"]
        grid = [p for p in points if p["stage"] == "grid"]
        lines += [f"### {init}", ""]
        if grid:
            lrs = sorted({p["lr"] for p in grid})
            wds = sorted({p["weight_decay"] for p in grid})
            cells = {(p["weight_decay"], p["lr"]): p for p in grid}
            rows = []
            for wd in wds:
                row = [f"wd {wd:.3g}"]
                for lr in lrs:
                    p = cells.get((wd, lr))
                    row.append("-" if p is None else "failed" if p["failed"] else
                               "pending" if p["box_ap"] is None else f"{p['box_ap']:.2f}")
                rows.append(row)
            lines += [tabulate(rows, headers=[""] + [f"lr {v:.3g}" for v in lrs], tablefmt="github"), ""]
            png = _heatmap(points, os.path.join(out_dir, "search", f"{init}_grid.png"),
                           f"{init}: {s['metric']} on {s['split']}")
            if png:
                lines += [f"![{init} grid](search/{init}_grid.png)", ""]
        dps = [p for p in points if p["stage"] == "drop_path"]
        if dps:
            lines += [tabulate([[f"{p['drop_path']:g}", p["iters"], "failed" if p["failed"] else
                                 "pending" if p["box_ap"] is None else f"{p['box_ap']:.2f}"] for p in dps],
                               headers=["drop path", "iters", s["metric"]], tablefmt="github"), ""]
        chosen = s.get("chosen")
        cost = s.get("cost_s")
        facts = [f"chosen: lr {chosen['lr']:.3g}, weight decay {chosen['weight_decay']:.3g}, drop path "
                 f"{chosen['drop_path']:g}" if chosen else "not finished: no choice yet",
                 f"the grid expanded {s['expanded']} time(s)" if s.get("expanded") else "the grid did not expand",
                 f"cost {cost / scale:.2f} {unit} over {len(points)} runs" if cost else f"{len(points)} runs"]
        if s.get("failed"):
            facts.append(f"failed and left out of the selection: {', '.join(s['failed'])}")
        lines += ["; ".join(facts) + ".", ""]
    return lines


def pretrain_info_from_dir(step_dir: str) -> dict:
    """Images / s (batch over the median logged step time), iterations, batch and the loss curve of
    a pre-training run."""
    info: dict = {"loss": [], "images_per_s": None}
    path = os.path.join(step_dir, "metrics.json")
    if not os.path.isfile(path):
        return info
    times, batch = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict) or "iteration" not in row:
                continue
            if isinstance(row.get("total_loss"), (int, float)):
                info["loss"].append((row["iteration"] + 1, row["total_loss"]))
            if isinstance(row.get("time"), (int, float)):
                times.append(row["time"])
    cfg_path = os.path.join(step_dir, "config.yaml")
    if os.path.isfile(cfg_path):
        try:
            from ..config import LazyConfig

            cfg = LazyConfig.load(cfg_path)
            batch = int(cfg.dataloader.train.total_batch_size) * int(cfg.train.get("grad_accum_steps", 1))
        except Exception:  # a cut config: no throughput, the rest of the report stands
            batch = None
    if times and batch:
        times.sort()
        info["images_per_s"] = batch / times[len(times) // 2]
    if info["loss"]:
        info["iterations"] = info["loss"][-1][0]
    info["batch_size"] = batch
    reused = os.path.join(step_dir, "reused_from.json")
    if os.path.isfile(reused):
        with open(reused, encoding="utf-8") as f:
            info["reused_from"] = json.load(f)
    return info


def pretrain_markdown(steps: list[dict], out_dir: str) -> list[str]:
    """Each pre-training step: method, iterations x batch, images and epochs seen, images / s, and
    one loss curve PNG per step (their scales differ) in ``pretrain_loss.png``."""
    if not steps:
        return []
    rows = []
    for s in steps:
        reuse = s.get("reused_from")
        rows.append([s["name"], s.get("method") or "-", s.get("iterations") or "-", s.get("batch_size") or "-",
                     s.get("images_seen") or "-", f"{s['epochs']:.2f}" if s.get("epochs") else "-",
                     s.get("data_images") or "-", f"{s['images_per_s']:.0f}" if s.get("images_per_s") else "-",
                     f"reused ({reuse.get('made')})" if reuse else "trained here"])
    lines = ["## Pre-training", "",
             tabulate(rows, headers=["step", "method", "iterations", "batch", "images seen", "epochs", "pool images",
                                     "images / s", "product"], tablefmt="github"), ""]
    curves = [s for s in steps if s.get("loss")]
    if curves:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        cols = min(3, len(curves))
        rows_n = -(-len(curves) // cols)
        fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3 * rows_n), squeeze=False)
        for ax, s in zip(axes.flat, curves):
            xs, ys = zip(*s["loss"])
            ax.plot(xs, ys)
            ax.set_title(f"{s['name']} ({s.get('method') or '?'})", fontsize=9)
            ax.set_xlabel("iteration")
            ax.set_ylabel("total loss")
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(curves):]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "pretrain_loss.png"), dpi=100)
        plt.close(fig)
        lines += ["![pre-training losses](pretrain_loss.png)", ""]
    return lines


def stages_markdown(stages: list[dict], concurrent_runs: int = 1) -> list[str]:
    """Wall time per stage of the invocation that ran it (``stages.json``), in the order they started."""
    if not stages:
        return []
    stages = sorted(stages, key=lambda s: s.get("start_s") or 0.0)
    total = sum(s.get("wall_s") or 0 for s in stages)
    rows = [[s["stage"], f"{(s.get('start_s') or 0) / 60:.1f}", f"{(s.get('wall_s') or 0) / 60:.2f}", s.get("note", "")]
            for s in stages]
    overlap = (f" With {concurrent_runs} runs at once the stages overlap: their sum is more than the wall time."
               if concurrent_runs > 1 else "")
    return ["## Wall time per stage", "",
            tabulate(rows, headers=["stage", "started (min)", "minutes", ""], tablefmt="github"), "",
            f"Sum of the stages: {total / 60:.1f} minutes.{overlap}", ""]
