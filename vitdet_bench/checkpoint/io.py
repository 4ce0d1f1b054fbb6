"""Reading and writing checkpoint files: atomic writes, weights-only reads, Detectron2 pickles.

Every other module of :mod:`vitdet_bench.checkpoint` reads and writes files through these
functions, and this module imports none of them, so the package has one import direction:
``io`` <- ``report`` <- ``backbone`` / ``detectron2`` <- ``init`` <- ``checkpointer``.

Two file kinds are read:

* ``torch.save`` files, with ``torch.load(weights_only=True)``; the ``argparse.Namespace`` that
  MAE, DeiT and BEiT training scripts store under ``"args"`` is allow-listed.
* Detectron2 model-zoo ``.pkl`` files (``{"model": {name: numpy array}, "__author__": ...}``), with
  a restricted unpickler that builds numpy arrays, dtypes and plain containers and nothing else.
  The standard library's ``pickle.load`` would run any callable the file names; this reader
  refuses the file (naming it and the object) instead.
"""

from __future__ import annotations

import argparse
import collections
import errno
import importlib
import io
import os
import pickle
import shutil
import zipfile
from typing import Any, Iterator

import numpy as np
import torch

from ..utils.file_io import atomic_write

__all__ = [
    "CheckpointError",
    "atomic_pickle_dump",
    "atomic_torch_save",
    "atomic_write_text",
    "find_nonfinite",
    "load_detectron2_pickle",
    "read_checkpoint",
    "refuse_nonfinite",
    "safe_torch_load",
]


class CheckpointError(RuntimeError):
    """A checkpoint (or ``last_checkpoint``) that is missing, empty, unreadable or does not fit."""


def _atomic_write(path: str, write: Any, mode: str = "wb") -> None:
    """:func:`~vitdet_bench.utils.file_io.atomic_write`, a failure raised as :class:`CheckpointError`
    naming the file, the cause and the free space."""
    try:
        atomic_write(path, write, mode)
    except (OSError, RuntimeError) as e:
        raise CheckpointError(_write_failure(path, e)) from e


def _write_failure(path: str, error: BaseException) -> str:
    """The message of a failed write: the file, the cause (a full disk named as such) and the free space."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free on that file system"
    except OSError:
        free = "free space unknown"
    full = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
    cause = "the disk is full" if full else f"{type(error).__name__}: {error}"
    return (f"Could not write {path}: {cause} ({free}). Nothing was replaced: an earlier file of that name "
            "and last_checkpoint are intact. Free some space (or set train.output_dir elsewhere), then resume "
            "with --resume.")


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to ``path.tmp.PID`` then rename over ``path`` (never a half-written file).

    Raises:
        CheckpointError: naming ``path``, the cause and the free space left when writing fails
            (a full disk shows up as an ``OSError`` or as a torch ``RuntimeError`` from its
            stream writer, whose own message never says "disk").
    """
    _atomic_write(path, lambda f: torch.save(obj, f))


def _tensors(obj: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}.{i}" if prefix else str(i))


def find_nonfinite(obj: Any, prefix: str = "") -> list[str]:
    """Dotted names of the floating-point tensors in a (nested) state that hold NaN or inf."""
    return [name for name, t in _tensors(obj, prefix)
            if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all())]


def refuse_nonfinite(state: Any, source: str, what: str = "loaded") -> None:
    """Raise when the tensors of ``state`` (a state dict, or any nesting of them) hold NaN or inf.

    Args:
        state: the weights about to be loaded or written.
        source: the file they come from, for the message.
        what: "loaded" or "converted": what would have happened to them.

    Raises:
        CheckpointError: naming ``source``, how many tensors and which (the first five): a model
            with such weights computes NaN (no detections, a NaN AP, a NaN loss at the first step).
    """
    bad = find_nonfinite(state)
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise CheckpointError(
            f"{source}: {len(bad)} tensors hold NaN or inf ({', '.join(bad[:5])}{more}), so it was not {what}: a "
            "model with these weights computes NaN. Use an earlier checkpoint of that run (this project never "
            "writes one with NaN; a training that diverged names its last clean checkpoint)."
        )


def atomic_write_text(path: str, text: str) -> None:
    """Write a small text file (``last_checkpoint``) atomically."""
    _atomic_write(path, lambda f: f.write(text), mode="w")


def atomic_pickle_dump(obj: Any, path: str) -> None:
    """``pickle.dump`` atomically (Detectron2 model-zoo ``.pkl`` files are plain pickles)."""
    _atomic_write(path, lambda f: pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL))


def _require_file(path: str) -> None:
    """Raise :class:`CheckpointError` for a checkpoint path that is missing or a folder."""
    if os.path.isdir(path):
        inside = sorted(f for f in os.listdir(path) if f.endswith((".pth", ".pkl", ".pt")))
        hint = f" (it holds {', '.join(inside[:4])})" if inside else ""
        raise CheckpointError(f"Checkpoint {path} is a folder, not a file{hint}: give the path of a checkpoint "
                              "file in it, e.g. a run's model_final.pth or a pre-training run's backbone_final.pth")
    if not os.path.isfile(path):
        raise CheckpointError(f"Checkpoint {path} does not exist")


def safe_torch_load(path: str) -> Any:
    """``torch.load(weights_only=True)``, with ``argparse.Namespace`` allow-listed.

    Raises:
        CheckpointError: the file does not exist, holds objects that are not safe to unpickle,
            or is not a torch file; the message names the file.
    """
    _require_file(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"Checkpoint {path} holds objects that are not safe to unpickle ({e}). Re-save its weights "
            "as a plain state dict in an environment where you trust the file."
        ) from e
    except Exception as e:
        raise CheckpointError(f"Checkpoint {path} could not be loaded (corrupt or not a torch file): {e}") from e


def _numpy_module(name: str) -> Any:
    """``numpy._core.X`` (NumPy 2) or ``numpy.core.X`` (NumPy 1): pickles name either."""
    try:
        return importlib.import_module(f"numpy._core.{name}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{name}")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    multiarray, numeric = _numpy_module("multiarray"), _numpy_module("numeric")
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
        # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, "latin1"):
        # a pure str -> bytes conversion.
        ("_codecs", "encode"): __import__("_codecs").encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, numpy scalars, dtypes and builtin containers; refuses anything else."""

    def __init__(self, file: Any, path: str) -> None:
        super().__init__(file, encoding="latin1")  # Detectron2 reads its .pkl files the same way
        self.path = path
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        obj = self.allowed.get((module, name))
        if obj is None:
            raise CheckpointError(
                f"{self.path}: refusing to unpickle '{module}.{name}'. A Detectron2 model-zoo .pkl holds "
                "only numpy arrays in plain dicts; anything else could run code when loaded. If you "
                "trust the file, re-save its weights as numpy arrays (or as a torch state dict)."
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"{self.path}: refusing a pickle with persistent ids (not a model-zoo .pkl)")


def _check_plain(value: Any, path: str, where: str) -> Any:
    """Arrays -> tensors, numpy scalars -> Python numbers; containers recursively; refuse object arrays."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise CheckpointError(f"{path}: '{where}' is a numpy array of dtype {value.dtype}, not numbers")
        if not (value.flags.writeable and value.flags.c_contiguous):
            value = np.array(value, order="C", copy=True)  # arrays read from a buffer are read-only
        return torch.from_numpy(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _check_plain(v, path, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_check_plain(v, path, f"{where}[{i}]") for i, v in enumerate(value))
    if value is None or isinstance(value, (str, bytes, int, float, bool)):
        return value
    raise CheckpointError(f"{path}: '{where}' holds a {type(value).__name__}, not an array or plain value")


def load_detectron2_pickle(path: str) -> dict[str, Any]:
    """Read a Detectron2 model-zoo ``.pkl`` without running code from it.

    Returns:
        the file's dict with every numpy array turned into a CPU tensor (``"model"`` becomes a
        state dict); other entries (``"__author__"``, ``"matching_heuristics"``) stay as they are.

    Raises:
        CheckpointError: naming the file, when it does not exist, names anything but numpy arrays,
            dtypes and plain containers, holds non-numeric arrays, or has no ``"model"`` entry
            (Caffe2 / Detectron v1 ``.pkl`` files hold ``"blobs"`` of ResNets this project does
            not build).
    """
    _require_file(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = _ArrayUnpickler(io.BytesIO(raw), path).load()
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path} could not be read as a pickle (corrupt or not a .pkl): {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        found = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{path}: not a Detectron2 model-zoo file: expected {{'model': {{name: array}}, '__author__': ...}}, "
            f"found {found} (Caffe2 / Detectron v1 'blobs' files are not supported)"
        )
    return _check_plain(data, path, "")


def read_checkpoint(path: str) -> Any:
    """Read any checkpoint this project accepts: a ``torch.save`` file (zip or legacy format) or a
    Detectron2 model-zoo ``.pkl``, both without executing code from the file."""
    _require_file(path)
    if path.endswith(".pkl") and not zipfile.is_zipfile(path):
        return load_detectron2_pickle(path)
    return safe_torch_load(path)
