"""Guard a run's output directory: never start over someone else's run, resume to a clean state.

A directory holds a run when it has any of ``config.yaml``, ``last_checkpoint``, ``metrics.json`` or
a checkpoint. Training into such a directory needs ``--resume`` (continue it; refused when the
model differs from the saved ``config.yaml``, whose checkpoints would not match, when that file is
unreadable, when ``last_checkpoint`` is gone but checkpoints are there, or when ``train.max_iter``
is below the checkpoint's iteration) or ``--overwrite`` (delete the run's files first; refused when
``train.init_checkpoint`` is one of them). A finished run resumed with its own ``max_iter`` trains
nothing (mode ``"finished"``). Resuming cuts ``metrics.json`` and the TensorBoard event files back
to the iteration the checkpoint was taken at, so rows of the attempt that was killed between two
checkpoints do not appear twice, and removes the ``*.tmp.PID`` files an interrupted atomic save
leaves behind.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
from typing import Any

import torch
import yaml
from omegaconf import DictConfig

from ..config import LazyConfig
from ..utils.file_io import atomic_write

__all__ = [
    "RunDirError",
    "check_output_dir",
    "clear_run",
    "config_differences",
    "final_evaluation",
    "record_final_evaluation",
    "describe_run",
    "last_checkpoint_iteration",
    "resume_notes",
    "run_files",
    "remove_stale_tmp_files",
    "truncate_events",
    "truncate_metrics",
]

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^(model|backbone|tokenizer)_(\d{7}|final)\.pth$")
_MODEL_CHECKPOINT = re.compile(r"^model_(\d{7}|final)\.pth$")
_TMP = re.compile(r"\.tmp\.\d+$")
# The run's own log files (rank 0 and the other ranks); a user's log.txt.bak is not one of them.
_LOG = re.compile(r"^log\.txt(\.rank\d+)?$")
# What --overwrite deletes: the files a run writes, nothing else a user may have put there.
_RUN_FILES = ("config.yaml", "config_eval.yaml", "last_checkpoint", "metrics.json", "run_info.json",
              "cost.json", "tide.json")
_RUN_DIRS = ("inference", "inference_eval")
# Keys that may change between a run and its resumption without making it another run.
_IGNORED_ON_RESUME = ("train.output_dir", "train.init_checkpoint", "train.init_checkpoint_options")


class RunDirError(RuntimeError):
    """An output directory that holds a run the requested one must not be mixed with."""


def describe_run(output_dir: str) -> str | None:
    """What run ``output_dir`` holds, in words, or ``None`` when it holds none."""
    if not os.path.isdir(output_dir):
        return None
    names = set(os.listdir(output_dir))
    checkpoints = sorted(n for n in names if _CHECKPOINT.match(n))
    if not checkpoints and not names & {"config.yaml", "last_checkpoint", "metrics.json"}:
        return None
    if "model_final.pth" in names:
        state = "a finished run (model_final.pth)"
    elif "last_checkpoint" in names:
        with open(os.path.join(output_dir, "last_checkpoint"), encoding="utf-8") as f:
            state = f"an unfinished run (last_checkpoint: {f.read().strip() or 'empty'})"
    else:
        state = "a run with no checkpoint yet"
    last = _last_logged_iteration(os.path.join(output_dir, "metrics.json"))
    if last is not None:
        state += f", logged up to iteration {last}"
    return state


def _last_logged_iteration(path: str) -> int | None:
    if not os.path.isfile(path):
        return None
    last = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                last = int(json.loads(line)["iteration"])
            except (ValueError, KeyError, TypeError):
                continue
    return last


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: node}


def _read_saved_config(saved_yaml: str) -> dict:
    """The saved ``config.yaml`` as a dict; :class:`RunDirError` naming it when it is cut or unreadable."""
    try:
        with open(saved_yaml, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"it holds a {type(data).__name__}, not a config")
    except (OSError, ValueError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise RunDirError(
            f"--resume: {saved_yaml} is unreadable ({type(e).__name__}: {first}), so it cannot be checked that "
            "this config continues the same model. Restore the file, or delete it to resume without the check "
            "(--resume writes it again), or use --overwrite or another train.output_dir="
        ) from e
    return data


def config_differences(saved_yaml: str, cfg: DictConfig) -> list[tuple[str, Any, Any]]:
    """``(dotted key, saved value, new value)`` for every leaf where ``cfg`` differs from a saved
    ``config.yaml`` (the output dir, init checkpoint and its options are not compared).

    Raises:
        RunDirError: ``saved_yaml`` is cut or unreadable (naming it and what to do).
    """
    old = _flatten(_read_saved_config(saved_yaml))
    new = _flatten(LazyConfig.to_dict(cfg))
    diffs = []
    for key in sorted(set(old) | set(new)):
        if any(key == k or key.startswith(k + ".") for k in _IGNORED_ON_RESUME):
            continue
        if old.get(key, "<absent>") != new.get(key, "<absent>"):
            diffs.append((key, old.get(key, "<absent>"), new.get(key, "<absent>")))
    return diffs


def resume_notes(cfg: DictConfig) -> list[str]:
    """What a resume of ``cfg.train.output_dir`` changes, in words for the run's log (the changed
    config keys; that optimizer and schedule values come from the checkpoint); [] when nothing.

    Args:
        cfg: the resumed run's config.
    """
    saved = os.path.join(cfg.train.output_dir, "config.yaml")
    if not os.path.isfile(saved):
        return []
    diffs = config_differences(saved, cfg)
    notes = []
    if diffs:
        notes.append(f"Resuming {cfg.train.output_dir} with {len(diffs)} changed config keys (config.yaml is "
                     "rewritten after the first step): "
                     + "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in diffs[:20]))
    if any(k.startswith(("optimizer.", "lr_multiplier.")) for k, _, _ in diffs):
        notes.append("The optimizer state and the lr schedule's base lr come from the checkpoint: changed "
                     "optimizer.* / lr_multiplier.* values do not change them on --resume")
    return notes


def last_checkpoint_iteration(output_dir: str) -> tuple[str, int] | None:
    """The file ``last_checkpoint`` names and the iteration stored in it, read without loading the
    weights (memory-mapped); ``None`` when there is no marker or the file cannot be read (the resume
    itself then reports why).

    Args:
        output_dir: the run's directory.
    """
    marker = os.path.join(output_dir, "last_checkpoint")
    try:
        with open(marker, encoding="utf-8") as f:
            name = f.read().strip()
        data = torch.load(os.path.join(output_dir, name), map_location="cpu", weights_only=True, mmap=True)
        return name, int(data["iteration"])
    except Exception:  # a missing, cut or foreign file: the resume's own load names the problem
        return None


def _model_checkpoints(output_dir: str) -> list[str]:
    """The run's ``model_*.pth`` files, newest first (``model_final.pth`` first)."""
    names = [n for n in os.listdir(output_dir) if _MODEL_CHECKPOINT.match(n)]
    return sorted(names, key=lambda n: (n == "model_final.pth", n), reverse=True)


def _check_resume(cfg: DictConfig, output_dir: str) -> str:
    """The checks of ``--resume`` into a directory holding a run; returns "resume" or "finished"."""
    if not os.path.exists(os.path.join(output_dir, "last_checkpoint")):
        found = _model_checkpoints(output_dir)
        if found:
            raise RunDirError(
                f"--resume: {output_dir} has no last_checkpoint file, but holds {', '.join(found[:4])}: a new run "
                f"there would replace them. To continue from the newest, write its name into "
                f"{os.path.join(output_dir, 'last_checkpoint')} (echo {found[0]} > "
                f"{os.path.join(output_dir, 'last_checkpoint')}) and resume again; --overwrite deletes them and "
                "starts again; or set train.output_dir= to another directory."
            )
    saved = os.path.join(output_dir, "config.yaml")
    if os.path.isfile(saved):
        model = [d for d in config_differences(saved, cfg) if d[0].startswith("model.")]
        if model:
            listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in model[:8])
            raise RunDirError(
                f"--resume: train.output_dir={output_dir} holds a run of another model ({saved} differs in "
                f"{len(model)} model keys: {listed}), whose checkpoints this model cannot continue. Resume "
                "with the run's own config (--config-file " + saved + "), or use --overwrite or another "
                "train.output_dir="
            )
    last = last_checkpoint_iteration(output_dir)
    if last is None:
        return "resume"
    name, iteration = last
    max_iter = int(cfg.train.max_iter)
    if iteration + 1 > max_iter:
        raise RunDirError(
            f"--resume: train.max_iter={max_iter}, but the run in {output_dir} has trained {iteration + 1} "
            f"iterations ({name}); a resumed run cannot be shorter than its checkpoint. Give train.max_iter >= "
            f"{iteration + 1} to continue it, set train.output_dir= to a new directory for a {max_iter}-iteration "
            "run, or use --overwrite to delete this one."
        )
    return "finished" if iteration + 1 == max_iter else "resume"


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def check_output_dir(cfg: DictConfig, resume: bool, overwrite: bool, eval_only: bool) -> str:
    """Decide whether this run may use ``cfg.train.output_dir``; nothing is written here.

    Returns:
        ``"new"`` (no run there), ``"resume"``, ``"finished"`` (``--resume`` of a run that has
        trained its ``train.max_iter`` iterations: nothing to train), ``"overwrite"`` or
        ``"beside"`` (an evaluation in a training run's directory: it writes
        ``config_eval.yaml`` and ``inference_eval/`` and leaves the run's own files alone).

    Raises:
        RunDirError: the directory holds a run and neither ``--resume`` nor ``--overwrite`` was
            given; ``--resume`` would continue a run of another model, cannot read its
            ``config.yaml``, would start over beside checkpoints that ``last_checkpoint`` no longer
            names, or asks for fewer iterations than the checkpoint holds; ``--overwrite`` would
            delete ``train.init_checkpoint``.
    """
    output_dir = cfg.train.output_dir
    if resume and overwrite:
        raise RunDirError("--resume continues the run in train.output_dir and --overwrite deletes it; give one")
    existing = describe_run(output_dir)
    if existing is None:
        return "new"
    if overwrite:
        init = str(cfg.train.get("init_checkpoint") or "")
        if init and os.path.exists(init) and any(_inside(init, os.path.join(output_dir, name))
                                                 for name in run_files(output_dir)):
            raise RunDirError(
                f"--overwrite would delete train.init_checkpoint={init}, a file of the run in "
                f"train.output_dir={output_dir}, before it is read. Write into another train.output_dir= (or, "
                "for --eval-only, leave out --overwrite: the evaluation is written beside the run), or copy the "
                "checkpoint out of the directory first."
            )
        return "overwrite"
    if eval_only:
        return "beside"
    if not resume:
        raise RunDirError(
            f"train.output_dir={output_dir} already holds {existing}. Pass --resume to continue it, "
            "--overwrite to delete its files and start again, or set train.output_dir= to another directory."
        )
    return _check_resume(cfg, output_dir)


def run_files(output_dir: str) -> list[str]:
    """The names in ``output_dir`` that a run writes (what ``--overwrite`` deletes; folders end in
    ``/``): config files, ``last_checkpoint``, ``metrics.json``, checkpoints and exports,
    TensorBoard events, ``log.txt`` (and ``log.txt.rankN``), ``*.tmp.PID`` files, ``inference/``.
    Anything else (a user's notes, ``log.txt.bak``) is not the run's.

    Args:
        output_dir: the run's directory.
    """
    names = []
    for name in sorted(os.listdir(output_dir)):
        path = os.path.join(output_dir, name)
        is_run_file = (name in _RUN_FILES or _CHECKPOINT.match(name) or name.startswith("events.out.tfevents.")
                       or _LOG.match(name) or _TMP.search(name))
        if os.path.isfile(path) and is_run_file:
            names.append(name)
        elif os.path.isdir(path) and name in _RUN_DIRS:
            names.append(name + "/")
    return names


def clear_run(output_dir: str) -> list[str]:
    """Delete the files a run wrote in ``output_dir`` (:func:`run_files`, for ``--overwrite``);
    returns their names. Files the run does not write are kept."""
    removed = run_files(output_dir)
    for name in removed:
        path = os.path.join(output_dir, name.rstrip("/"))
        if name.endswith("/"):
            shutil.rmtree(path)
        else:
            os.remove(path)
    return removed


def remove_stale_tmp_files(output_dir: str) -> list[str]:
    """Remove ``*.tmp.PID`` files that an interrupted atomic write left (in the dir and inference/)."""
    removed = []
    for folder in (output_dir, *(os.path.join(output_dir, d) for d in _RUN_DIRS)):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if _TMP.search(name) and os.path.isfile(path):
                os.remove(path)
                removed.append(os.path.relpath(path, output_dir))
    return sorted(removed)


def truncate_metrics(path: str, start_iter: int) -> int:
    """Keep the rows of ``metrics.json`` logged before ``start_iter`` (and drop unreadable lines);
    returns how many lines were dropped."""
    if not os.path.isfile(path):
        return 0
    kept, dropped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                keep = int(row["iteration"]) < start_iter
            except (ValueError, KeyError, TypeError):
                keep = False  # a line cut by a kill
            if keep:
                kept.append(line if line.endswith("\n") else line + "\n")
            else:
                dropped += 1
    if dropped:
        atomic_write(path, lambda f: f.write("".join(kept).encode("utf-8")))
    return dropped


def _metric_rows(path: str) -> list[dict]:
    rows = []
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line cut by a kill
                if isinstance(row, dict) and isinstance(row.get("iteration"), int):
                    rows.append(row)
    return rows


def final_evaluation(path: str, max_iter: int) -> dict[str, dict[str, float]] | None:
    """The evaluation ``metrics.json`` holds for the last iteration (``max_iter - 1``), as
    ``{task: {metric: value}}``; ``None`` when it holds none (a run killed after its final
    checkpoint, a file that lost its last row).

    Args:
        path: the run's ``metrics.json``.
        max_iter: the run's ``train.max_iter``.
    """
    for row in reversed(_metric_rows(path)):
        if row["iteration"] == max_iter - 1 and any("/" in k for k in row):
            results: dict[str, dict[str, float]] = {}
            for key, value in row.items():
                if "/" in key:
                    task, metric = key.split("/", 1)
                    results.setdefault(task, {})[metric] = value
            return results
    return None


def record_final_evaluation(path: str, iteration: int, results: dict[str, dict[str, float]]) -> None:
    """Add an evaluation to ``metrics.json`` as ``task/metric`` keys of the row of ``iteration``
    (appended as a row of its own when that row is missing); the other rows are kept as they are.

    Args:
        path: the run's ``metrics.json`` (rewritten atomically).
        iteration: the row's iteration (the last one, ``max_iter - 1``).
        results: ``{task: {metric: value}}`` of the evaluation.
    """
    flat = {f"{task}/{k}": v for task, metrics in results.items() for k, v in metrics.items()}
    lines = open(path, encoding="utf-8").read().splitlines() if os.path.isfile(path) else []
    for i in range(len(lines) - 1, -1, -1):
        try:
            row = json.loads(lines[i])
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("iteration") == iteration:
            lines[i] = json.dumps({**row, **flat}, sort_keys=True)
            break
    else:
        lines.append(json.dumps({"iteration": iteration, **flat}, sort_keys=True))
    atomic_write(path, lambda f: f.write("".join(line + "\n" for line in lines if line.strip()).encode("utf-8")))


def truncate_events(output_dir: str, start_iter: int) -> int:
    """Drop TensorBoard scalar events at steps >= ``start_iter`` from every event file in
    ``output_dir``; returns how many were dropped.

    TensorBoard's own ``purge_step`` only hides such events in its UI; other readers (and the
    files) would still hold them, so they are removed. Records are read and written with
    TensorBoard's event-file loader and record writer; kept records are copied byte for byte.
    """
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    total = 0
    for path in sorted(glob.glob(os.path.join(output_dir, "events.out.tfevents.*"))):
        if _TMP.search(path):
            continue
        records = list(RawEventFileLoader(path).Load())
        kept = []
        for raw in records:
            event = event_pb2.Event.FromString(raw)
            if event.HasField("summary") and event.step >= start_iter:
                continue
            kept.append(raw)
        if len(kept) == len(records) and os.path.getsize(path) == sum(len(r) + 16 for r in records):
            continue
        total += len(records) - len(kept)

        def write(f: Any, records: list[bytes] = kept) -> None:
            writer = RecordWriter(f)  # kept records, byte for byte
            for raw in records:
                writer.write(raw)
            writer.flush()

        atomic_write(path, write)
    return total

