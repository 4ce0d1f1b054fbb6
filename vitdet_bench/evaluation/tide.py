"""TIDE error analysis (Bolya et al., 2020) of detection results, through tidecv.

For each task (box, mask) tidecv fixes one error type at a time and reports the AP50 gained, dAP:
main errors Cls, Loc, Both, Dupe, Bkg, Miss and special errors FalsePos, FalseNeg. This module
only runs tidecv on the files a run wrote (the dataset's COCO json and
``inference/coco_instances_results.json``), collects its numbers and draws the comparison;
the numbers are tidecv's own.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from typing import Sequence

__all__ = ["MAIN_ERRORS", "SPECIAL_ERRORS", "TASKS", "run_tide", "plot_tide_comparison", "tide_markdown", "tide_table"]

logger = logging.getLogger(__name__)

MAIN_ERRORS = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")
SPECIAL_ERRORS = ("FalsePos", "FalseNeg")
# Our task names -> tidecv's modes.
TASKS = {"bbox": "bbox", "segm": "mask"}


def _import_tidecv():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from tidecv import TIDE, datasets
    except ImportError as e:
        raise ImportError(
            "TIDE needs tidecv (installed by `make venv`: `pip install --no-deps tidecv==1.0.1` plus seaborn, pandas, "
            "appdirs; it works with opencv-python-headless)"
        ) from e
    return TIDE, datasets


def _quiet_opencv() -> None:
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def run_tide(gt_json: str, results_json: str, tasks: Sequence[str] = ("bbox", "segm"),
             plot_dir: str | None = None, name: str = "run") -> dict:
    """tidecv's main and special dAP for each task.

    Args:
        gt_json: COCO-format ground truth (the evaluated split).
        results_json: COCO results (``bbox`` and, for masks, ``segmentation`` per detection).
        tasks: "bbox" and / or "segm".
        plot_dir: write tidecv's summary figure per task here (``{name}_{task}_summary.png``).
        name: the run's name in figures.

    Returns:
        ``{task: {"AP50": ..., "main": {Cls: dAP, ...}, "special": {FalsePos: dAP, FalseNeg: dAP}}}``.
    """
    for path, what in ((gt_json, "ground-truth"), (results_json, "results")):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"TIDE: {what} file {path} does not exist")
    with open(results_json) as f:
        dets = json.load(f)
    if not isinstance(dets, list):
        raise ValueError(f"TIDE: {results_json} is not a COCO results list")
    TIDE, datasets = _import_tidecv()
    out = {}
    # tidecv draws each figure's parts in one fixed folder ($TIDE_PATH/_tmp, by default in the user's
    # home) that it empties first: two reports plotting at once (two benchmarks on one machine, or on
    # a cluster's shared home) delete each other's parts and crash. Each call gets its own folder.
    scratch = tempfile.TemporaryDirectory(prefix="tidecv_") if plot_dir else contextlib.nullcontext(None)
    with scratch as scratch_dir:
        for task in tasks:
            out[task] = _tide_task(TIDE, datasets, gt_json, results_json, dets, task, plot_dir, name, scratch_dir)
    return out


def _tide_task(TIDE, datasets, gt_json: str, results_json: str, dets: list, task: str, plot_dir: str | None,
               name: str, scratch_dir: str | None) -> dict:
    """One task of :func:`run_tide`."""
    if task not in TASKS:
        raise ValueError(f"TIDE task must be one of {list(TASKS)}, got {task!r}")
    if task == "segm" and dets and "segmentation" not in dets[0]:
        raise ValueError(f"TIDE: {results_json} has no 'segmentation' entries for the mask task")
    tide = TIDE()
    if scratch_dir:
        tide.plotter.tide_path = scratch_dir
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = datasets.COCO(gt_json)
        preds = datasets.COCOResult(results_json, name=name)
        run = tide.evaluate(gt, preds, mode=TASKS[task], name=f"{name}_{task}")
        errors = tide.get_all_errors()
        if plot_dir:
            os.makedirs(plot_dir, exist_ok=True)
            _quiet_opencv()  # tidecv's imwrite of a float image warns on every figure
            tide.plot(plot_dir)
    key = f"{name}_{task}"
    return {
        "AP50": float(run.ap),
        "main": {e: float(errors["main"][key][e]) for e in MAIN_ERRORS},
        "special": {e: float(errors["special"][key][e]) for e in SPECIAL_ERRORS},
    }


def tide_table(results: dict[str, dict], task: str) -> tuple[list[str], list[list]]:
    """Headers and rows (one per run) of dAP for ``task``."""
    headers = ["run", "AP50"] + list(MAIN_ERRORS) + list(SPECIAL_ERRORS)
    rows = []
    for run, res in results.items():
        if task not in res:
            continue
        r = res[task]
        rows.append([run, round(r["AP50"], 2)] + [round(r["main"][e], 2) for e in MAIN_ERRORS]
                    + [round(r["special"][e], 2) for e in SPECIAL_ERRORS])
    return headers, rows


def tide_markdown(results: dict[str, dict]) -> str:
    """Markdown tables of dAP per run, box then mask."""
    from tabulate import tabulate

    parts = []
    for task, title in (("bbox", "Box"), ("segm", "Mask")):
        headers, rows = tide_table(results, task)
        if rows:
            table = tabulate(rows, headers=headers, tablefmt="github")
            parts.append(f"### {title}: dAP per error type (tidecv)\n\n" + table)
    return "\n\n".join(parts) + "\n"


def plot_tide_comparison(results: dict[str, dict], path: str, tasks: Sequence[str] = ("bbox", "segm")) -> str:
    """Grouped bars of each run's main and special dAP, one panel per task (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = [t for t in tasks if any(t in r for r in results.values())]
    errors = list(MAIN_ERRORS) + list(SPECIAL_ERRORS)
    fig, axes = plt.subplots(len(tasks), 1, figsize=(11, 3.6 * len(tasks)), squeeze=False)
    runs = list(results)
    width = 0.8 / max(len(runs), 1)
    x = np.arange(len(errors))
    for ax, task in zip(axes[:, 0], tasks):
        for i, run in enumerate(runs):
            if task not in results[run]:
                continue
            r = results[run][task]
            values = [r["main"][e] for e in MAIN_ERRORS] + [r["special"][e] for e in SPECIAL_ERRORS]
            ax.bar(x + (i - (len(runs) - 1) / 2) * width, values, width, label=run)
        ax.axvline(len(MAIN_ERRORS) - 0.5, color="grey", lw=0.8, ls="--")
        ax.set_xticks(x, errors)
        ax.set_ylabel("dAP (AP50 gained if fixed)")
        ax.set_title(f"TIDE errors, {'box' if task == 'bbox' else 'mask'}: main (left) and special (right)")
        ax.legend(fontsize=8, ncol=min(len(runs), 5))
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
