"""Guard a run's output directory: never start over someone else's run, resume to a clean state.

A directory holds a run when it has any of ``config.yaml``, ``last_checkpoint``, ``metrics.json`` or
a checkpoint. Training into such a directory needs ``--resume`` (continue it; refused when the
model differs from the saved ``config.yaml``, whose checkpoints would not match) or ``--overwrite``
(delete the run's files first). Resuming cuts ``metrics.json`` and the TensorBoard event files back
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

import yaml
from omegaconf import DictConfig

from ..config import LazyConfig

__all__ = [
    "RunDirError",
    "check_output_dir",
    "clear_run",
    "config_differences",
    "describe_run",
    "remove_stale_tmp_files",
    "truncate_events",
    "truncate_metrics",
]

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^(model|backbone|tokenizer)_(\d{7}|final)\.pth$")
_TMP = re.compile(r"\.tmp\.\d+$")
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


def config_differences(saved_yaml: str, cfg: DictConfig) -> list[tuple[str, Any, Any]]:
    """``(dotted key, saved value, new value)`` for every leaf where ``cfg`` differs from a saved
    ``config.yaml`` (the output dir, init checkpoint and its options are not compared)."""
    with open(saved_yaml, encoding="utf-8") as f:
        old = _flatten(yaml.safe_load(f) or {})
    new = _flatten(LazyConfig.to_dict(cfg))
    diffs = []
    for key in sorted(set(old) | set(new)):
        if any(key == k or key.startswith(k + ".") for k in _IGNORED_ON_RESUME):
            continue
        if old.get(key, "<absent>") != new.get(key, "<absent>"):
            diffs.append((key, old.get(key, "<absent>"), new.get(key, "<absent>")))
    return diffs


def check_output_dir(cfg: DictConfig, resume: bool, overwrite: bool, eval_only: bool) -> str:
    """Decide whether this run may use ``cfg.train.output_dir``; nothing is written here.

    Returns:
        ``"new"`` (no run there), ``"resume"``, ``"overwrite"`` or ``"beside"`` (an evaluation
        in a training run's directory: it writes ``config_eval.yaml`` and ``inference_eval/``
        and leaves the run's own files alone).

    Raises:
        RunDirError: the directory holds a run and neither ``--resume`` nor ``--overwrite`` was
            given, or ``--resume`` would continue a run of another model.
    """
    output_dir = cfg.train.output_dir
    if resume and overwrite:
        raise RunDirError("--resume continues the run in train.output_dir and --overwrite deletes it; give one")
    existing = describe_run(output_dir)
    if existing is None:
        return "new"
    if eval_only:
        return "overwrite" if overwrite else "beside"
    if overwrite:
        return "overwrite"
    if not resume:
        raise RunDirError(
            f"train.output_dir={output_dir} already holds {existing}. Pass --resume to continue it, "
            "--overwrite to delete its files and start again, or set train.output_dir= to another directory."
        )
    saved = os.path.join(output_dir, "config.yaml")
    if os.path.isfile(saved):
        diffs = config_differences(saved, cfg)
        model = [d for d in diffs if d[0].startswith("model.")]
        if model:
            listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in model[:8])
            raise RunDirError(
                f"--resume: train.output_dir={output_dir} holds a run of another model ({saved} differs in "
                f"{len(model)} model keys: {listed}), whose checkpoints this model cannot continue. Resume "
                "with the run's own config (--config-file " + saved + "), or use --overwrite or another "
                "train.output_dir="
            )
        if diffs:
            logger.warning("Resuming %s with %d changed config keys: %s", output_dir, len(diffs),
                           "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in diffs[:20]))
        if any(k.startswith(("optimizer.", "lr_multiplier.")) for k, _, _ in diffs):
            logger.warning("The optimizer state and the lr schedule's base lr come from the checkpoint: changed "
                           "optimizer.* / lr_multiplier.* values do not change them on --resume")
    return "resume"


def clear_run(output_dir: str) -> list[str]:
    """Delete the files a run wrote in ``output_dir`` (for ``--overwrite``); returns their names.
    Files the run does not write are kept."""
    removed = []
    for name in sorted(os.listdir(output_dir)):
        path = os.path.join(output_dir, name)
        is_run_file = (name in _RUN_FILES or _CHECKPOINT.match(name) or name.startswith("events.out.tfevents.")
                       or name.startswith("log.txt") or _TMP.search(name))
        if os.path.isfile(path) and is_run_file:
            os.remove(path)
            removed.append(name)
        elif os.path.isdir(path) and name in _RUN_DIRS:
            shutil.rmtree(path)
            removed.append(name + "/")
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
        _atomic_write(path, "".join(kept).encode("utf-8"))
    return dropped


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
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "wb") as f:
            writer = RecordWriter(f)
            for raw in kept:
                writer.write(raw)
            writer.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return total


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
