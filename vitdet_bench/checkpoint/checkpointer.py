"""Save and restore everything a run needs to continue exactly: atomically, loaded weights-only.

A checkpoint holds the model, optimizer, lr scheduler, grad scaler, iteration and the RNG states.
Files are written to a temporary name and renamed, so a crash during a save leaves the previous
checkpoint and ``last_checkpoint`` intact. Initial weights (``train.init_checkpoint``: a detector
checkpoint, a Detectron2 one or a pre-trained backbone) go through
:func:`~vitdet_bench.checkpoint.init.load_init_checkpoint`.
"""

from __future__ import annotations

import logging
import os
import random
import re
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from tabulate import tabulate

from ..utils.comm import unwrap_model
from .init import load_init_checkpoint
from .io import CheckpointError, atomic_torch_save, atomic_write_text, find_nonfinite, read_checkpoint, refuse_nonfinite

__all__ = [
    "Checkpointer",
    "get_rng_state",
    "load_model_weights",
    "set_rng_state",
]

logger = logging.getLogger(__name__)

_PERIODIC = re.compile(r"model_(\d{7})\.pth$")


def get_rng_state() -> dict:
    """All global RNG states, in types ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_model_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> dict[str, list]:
    """Load matching weights non-strictly and log a table of missing, unexpected and mismatched keys.

    Returns:
        ``{"missing": [...], "unexpected": [...], "mismatched": [(key, ckpt_shape, model_shape)]}``.
    """
    model = unwrap_model(model)
    own = model.state_dict()
    mismatched = [
        (k, tuple(v.shape), tuple(own[k].shape))
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    bad = {k for k, _, _ in mismatched}
    incompatible = model.load_state_dict({k: v for k, v in state_dict.items() if k not in bad}, strict=False)
    report = {"missing": sorted(incompatible.missing_keys), "unexpected": sorted(incompatible.unexpected_keys),
              "mismatched": mismatched}
    loaded = len(state_dict) - len(report["unexpected"]) - len(mismatched)
    logger.info("Loaded %d of %d tensors from %s", loaded, len(own), source)
    rows = [(k, "missing", "", str(tuple(own[k].shape))) for k in report["missing"]]
    rows += [(k, "unexpected", str(tuple(state_dict[k].shape)), "") for k in report["unexpected"]]
    rows += [(k, "shape mismatch (skipped)", str(a), str(b)) for k, a, b in mismatched]
    if rows:
        logger.warning("Checkpoint %s does not match the model:\n%s", source,
                       tabulate(rows, headers=["key", "problem", "checkpoint", "model"]))
    return report


class Checkpointer:
    """Periodic, atomic checkpoints in ``save_dir`` plus Detectron2's ``last_checkpoint`` file.

    Args:
        model: the model (DDP-wrapped or not).
        save_dir: the output directory.
        save_to_disk: only the main process writes.
        init_options: keyword arguments of :func:`load_init_checkpoint` for ``load(full=False)``
            (``format``, ``strict``, ``resize_patch_embed``, ``rel_pos_resize``; see
            ``train.init_checkpoint_options`` and ``train.init_strict``).
        checkpointables: other objects with ``state_dict`` / ``load_state_dict`` (optimizer,
            scheduler, grad scaler).
    """

    def __init__(self, model: nn.Module, save_dir: str, save_to_disk: bool = True,
                 init_options: dict | None = None, **checkpointables: Any) -> None:
        self.model = model
        self.init_options = dict(init_options or {})
        self.save_dir = save_dir
        self.save_to_disk = save_to_disk
        self.checkpointables = checkpointables

    def save(self, name: str, **extra: Any) -> str:
        """Write ``save_dir/name.pth`` with the model, checkpointables, RNG state and ``extra``."""
        path = os.path.join(self.save_dir, f"{name}.pth")
        if not self.save_to_disk:
            return path
        data = {"model": unwrap_model(self.model).state_dict(), "rng": get_rng_state(), **extra}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        bad = find_nonfinite({k: v for k, v in data.items() if k != "rng"})
        if bad:
            groups = {}
            for name in bad:
                groups.setdefault(name.split(".")[0], []).append(name)
            counts = ", ".join(f"{len(v)} {k} tensors" for k, v in groups.items())
            raise FloatingPointError(
                f"Refusing to write checkpoint {path}: {counts} hold NaN or inf (e.g. {', '.join(bad[:5])}); "
                "nothing was written and last_checkpoint is unchanged."
            )
        atomic_torch_save(data, path)
        atomic_write_text(os.path.join(self.save_dir, "last_checkpoint"), os.path.basename(path))
        logger.info("Saved checkpoint to %s", path)
        return path

    def has_checkpoint(self) -> bool:
        return os.path.exists(os.path.join(self.save_dir, "last_checkpoint"))

    def get_checkpoint_file(self) -> str:
        """The file ``last_checkpoint`` names; raises :class:`CheckpointError` naming what is wrong
        and the newest intact checkpoint to resume from instead."""
        marker = os.path.join(self.save_dir, "last_checkpoint")
        with open(marker, encoding="utf-8") as f:
            name = f.read().strip()
        if not name:
            raise CheckpointError(f"{marker} is empty: cannot resume. {self.recovery_note()}")
        path = os.path.join(self.save_dir, name)
        if not os.path.isfile(path):
            raise CheckpointError(f"{marker} names {name}, but {path} does not exist: cannot resume. "
                                  f"{self.recovery_note(path)}")
        return path

    def recovery_note(self, bad: str | None = None) -> str:
        """What to do when the checkpoint ``last_checkpoint`` names cannot be used: the newest other
        checkpoint in ``save_dir`` that loads and is finite, and how to resume from it."""
        marker = os.path.join(self.save_dir, "last_checkpoint")
        names = sorted((f for f in os.listdir(self.save_dir) if _PERIODIC.match(f) or f == "model_final.pth"),
                       key=lambda f: (f == "model_final.pth", f), reverse=True) if os.path.isdir(self.save_dir) else []
        for name in names:
            path = os.path.join(self.save_dir, name)
            if bad is not None and os.path.abspath(path) == os.path.abspath(bad):
                continue
            try:
                data = read_checkpoint(path)
            except CheckpointError:
                continue
            if isinstance(data, dict) and "model" in data and not find_nonfinite(data["model"]):
                at = f" (iteration {data['iteration']})" if "iteration" in data else ""
                return (f"The newest intact checkpoint is {path}{at}: to resume from it, write its name into "
                        f"{marker} (echo {name} > {marker}) and run again with --resume; or start again with "
                        "--overwrite.")
        return f"No other checkpoint in {self.save_dir} is intact: start again with --overwrite."

    def load(self, path: str, full: bool = True) -> dict:
        """Load a checkpoint: ``full`` resumes this run from its own checkpoint (model, optimizer,
        scheduler, scaler, RNG state); otherwise ``path`` initialises the model's weights (any
        file :func:`load_init_checkpoint` reads, reported and checked as ``init_options`` say).

        Returns:
            the remaining entries (e.g. ``iteration``) when resuming, else ``{}``.
        """
        if not full:
            load_init_checkpoint(self.model, path, **self.init_options)
            return {}
        data = read_checkpoint(path)
        if not isinstance(data, dict):
            raise CheckpointError(f"Checkpoint {path} holds a {type(data).__name__}, not a dict")
        state = data.pop("model", None) if "model" in data else data
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"Checkpoint {path} has no model state dict (keys: {sorted(data)[:10]})")
        refuse_nonfinite(state, path)
        load_model_weights(self.model, state, path)
        if state is data:
            return {}
        for key, obj in self.checkpointables.items():
            if key not in data:
                raise CheckpointError(f"Checkpoint {path} has no '{key}' state: cannot resume this run from it")
            obj.load_state_dict(data.pop(key))
        if "rng" in data:
            set_rng_state(data.pop("rng"))
        return data

    def resume_or_load(self, path: str, resume: bool = True) -> dict:
        """Resume from ``last_checkpoint`` when asked and present; else load model weights from ``path``.

        Raises:
            CheckpointError: the last checkpoint is missing, cut, unreadable or holds NaN / inf;
                the message names the newest intact checkpoint and how to resume from it.
        """
        if resume and self.has_checkpoint():
            last = self.get_checkpoint_file()
            try:
                return self.load(last, full=True)
            except CheckpointError as e:
                raise CheckpointError(f"Cannot resume from {last}: {e}\n{self.recovery_note(last)}") from e
        if resume:
            logger.info("No checkpoint in %s to resume from; starting a new run", self.save_dir)
        if path:
            self.load(path, full=False)
        return {}

    def last_clean_checkpoint(self) -> str | None:
        """The newest checkpoint in ``save_dir`` whose tensors are all finite, or ``None``.

        ``last_checkpoint`` is tried first, then the other ``model_*.pth`` files, newest first (a
        file written by an older version, or copied in, may hold NaN; ones this class writes
        never do).
        """
        candidates = []
        if self.has_checkpoint():
            try:
                candidates.append(self.get_checkpoint_file())
            except (CheckpointError, OSError):
                pass
        if os.path.isdir(self.save_dir):
            names = sorted((f for f in os.listdir(self.save_dir) if _PERIODIC.match(f) or f == "model_final.pth"),
                           key=lambda f: (f != "model_final.pth", f), reverse=True)
            candidates += [os.path.join(self.save_dir, f) for f in names]
        seen = set()
        for path in candidates:
            if path in seen:
                continue
            seen.add(path)
            try:
                data = read_checkpoint(path)
            except CheckpointError:
                continue
            if not find_nonfinite({k: v for k, v in data.items() if k != "rng"} if isinstance(data, dict) else data):
                return path
        return None

    def clean_checkpoint_note(self) -> str:
        """One sentence for an error message: the checkpoint a resume can start from, or none."""
        path = self.last_clean_checkpoint()
        if path is None:
            written = os.path.isdir(self.save_dir) and any(
                _PERIODIC.match(f) or f == "model_final.pth" for f in os.listdir(self.save_dir))
            if written:
                return f"No checkpoint in {self.save_dir} is clean: there is nothing to resume from."
            return f"No checkpoint has been written to {self.save_dir}: there is nothing to resume from."
        try:
            named = self.get_checkpoint_file() if self.has_checkpoint() else None
        except (CheckpointError, OSError):
            named = None
        if named is not None and os.path.abspath(named) == os.path.abspath(path):
            return f"The last checkpoint, {path}, is clean (every tensor finite); --resume continues from it."
        marker = os.path.join(self.save_dir, "last_checkpoint")
        return (f"The last clean checkpoint is {path}, but {marker} names another file: write "
                f"{os.path.basename(path)} into it before resuming with --resume.")

    def prune(self, max_to_keep: int) -> None:
        """Delete the oldest periodic ``model_NNNNNNN.pth`` beyond ``max_to_keep``."""
        if not self.save_to_disk or max_to_keep is None or max_to_keep <= 0:
            return
        files = sorted(f for f in os.listdir(self.save_dir) if _PERIODIC.match(f))
        for f in files[:-max_to_keep]:
            os.remove(os.path.join(self.save_dir, f))
