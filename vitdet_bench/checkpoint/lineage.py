"""Where a run's weights came from: the record of its init file, and an export's lineage in words.

A pre-training run started from a file (``train.init_checkpoint``) records it
(:func:`describe_init_source`: the file, its format, what the file says of itself) in its exports'
metadata and in ``init_source.json`` beside its checkpoints, so a resumed run, and a run continued
from one of its checkpoints, still know the chain; :func:`lineage_text` says it in one line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Any

from .formats import CHECKPOINT_FORMATS, get_format
from .io import CheckpointError, read_checkpoint

__all__ = ["INIT_SOURCE_FILE", "describe_init_source", "lineage_text"]

logger = logging.getLogger(__name__)

# Where a pre-training run keeps the record of its init file (written by the pre-training engine),
# so its resumed run and a run continued from its checkpoint still know the lineage.
INIT_SOURCE_FILE = "init_source.json"


def _plain(value: Any) -> Any:
    """JSON-like copy of a saved value (metadata must load with weights_only=True)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def describe_init_source(obj: Any, format: str, source: str) -> dict:
    """Where a run's weights started, as plain data for the export's metadata.

    The file and its format, plus what the file says of itself: the epoch, arch and args of an
    official training file; the metadata of this project's backbone export (whose own ``init``
    makes the lineage a chain); the iteration of this project's run checkpoint, and the
    ``init_source.json`` next to it when that run itself continued from a file (the chain again).

    Args:
        obj: the loaded file.
        format: the format it was read as (a registered one's label names its kind).
        source: the file's path (or a name for an in-memory object).
    """
    path = os.path.abspath(source) if os.path.isfile(source) else source
    fmt = get_format(format) if format in CHECKPOINT_FORMATS else None
    kind = format if fmt is None else f"{fmt.label} official layout" if fmt.official else fmt.label
    info: dict[str, Any] = {"file": path, "format": format, "kind": kind}
    if fmt is not None and fmt.official:
        info["method"] = fmt.layout.method
    if not isinstance(obj, dict):
        return info
    if format == "vitdet_bench":
        meta = obj.get("meta") or {}
        keep = ("method", "arch", "iterations", "epochs", "batch_size", "data", "init", "lineage")
        info.update({k: _plain(meta[k]) for k in keep if k in meta})
    for key in ("epoch", "start_epoch", "arch", "iteration"):  # start_epoch: MAE-Lite's
        if isinstance(obj.get(key), (int, str)):
            info[key] = obj[key]
    if isinstance(obj.get("args"), argparse.Namespace):
        info["args"] = _plain(vars(obj["args"]))
    if format == "detector" and isinstance(obj.get("iteration"), int) and os.path.isfile(path):
        info.pop("iteration")
        info["iterations"] = obj["iteration"] + 1
        info.update(_run_history(os.path.dirname(path), info["iterations"]))
    return info


def _run_history(run_dir: str, iterations: int) -> dict:
    """What a run of this project did up to ``iterations``: the lineage of its export at that
    iteration (``backbone_{N}.pth`` or ``backbone_final.pth``), else the record of its own init
    (``init_source.json``); ``{}`` for a run from scratch without exports. A record, so an
    unreadable file is a warning, not a reason to stop the run."""
    for name in (f"backbone_{iterations - 1:07d}.pth", "backbone_final.pth"):
        export = os.path.join(run_dir, name)
        if not os.path.isfile(export):
            continue
        try:
            meta = read_checkpoint(export).get("meta") or {}
        except (CheckpointError, OSError, AttributeError) as e:
            logger.warning("%s: unreadable (%s); the lineage skips it", export, e)
            continue
        if meta.get("iterations") == iterations and meta.get("lineage"):
            return {k: _plain(meta[k]) for k in ("method", "data", "lineage") if k in meta}
    record = os.path.join(run_dir, INIT_SOURCE_FILE)
    if os.path.isfile(record):
        try:
            with open(record, encoding="utf-8") as f:
                return {"init": json.load(f)}
        except (OSError, ValueError) as e:
            logger.warning("%s: unreadable (%s); the lineage starts at this run", record, e)
    return {}


def lineage_text(meta: dict) -> str:
    """An export's history in one line: "started from X (what it is, epoch E), then N iterations
    (E epochs) of M on Y"; an init file with its own history adds it in brackets.

    Args:
        meta: an export's metadata (:func:`vitdet_bench.pretrain.engine.export_meta`): ``iterations``,
            ``epochs``, ``method``, ``data`` and, when the run continued from a file, ``init``
            (:func:`describe_init_source`).
    """
    data = meta.get("data") or {}
    where = str(data.get("root") or data.get("dataset") or "its data")
    if data.get("num_images"):
        where += f" ({data['num_images']} images)"
    epochs = f" ({meta['epochs']} epochs)" if meta.get("epochs") is not None else ""
    done = f"{meta.get('iterations')} iterations{epochs} of {meta.get('method') or 'pre-training'} on {where}"
    init = meta.get("init")
    if not init:
        return f"from scratch: {done}"
    facts = [str(init.get("kind") or init.get("format"))]
    facts += [f"epoch {init['epoch']}"] if "epoch" in init else []
    facts += [f"iteration {init['iteration']}"] if "iteration" in init else []
    facts += [f"after {init['iterations']} iterations"] if "iterations" in init else []
    name = os.path.basename(str(init.get("file")))
    text = f"started from {name} ({', '.join(facts)}), then {done}"
    earlier = init.get("lineage") or (lineage_text(init) if init.get("init") else "")
    return text + (f" [{name}: {earlier}]" if earlier else "")
