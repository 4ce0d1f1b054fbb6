"""What makes a detector fast without changing what it computes beyond stated tolerances:
autocast at inference, ``torch.inference_mode``, and ``torch.compile`` of the backbone.

Config keys (``configs/common/train.py``):

* ``train.amp.inference``: ``None`` (default): evaluation and the Predictor autocast in
  ``train.amp.dtype`` when the run trains with AMP (``train.amp.enabled``) *and* runs on CUDA, so
  a GPU recipe trained in fp16 / bf16 is also evaluated in it and CPU runs stay fp32; ``True``:
  autocast in ``train.amp.dtype`` on any device (``bfloat16`` on the CPU); ``False``: fp32.
* ``train.compile``: ``enabled`` compiles the module at ``module`` (a dotted attribute of the
  model, ``"backbone"``: the ViT and its neck) in place with ``nn.Module.compile``, so parameter
  names and checkpoints do not change; ``mode`` / ``backend`` / ``dynamic`` are
  ``torch.compile``'s. Inputs are square-padded, so the compiled graph sees one shape per batch
  size. Compilation happens on the first forward pass (``tools/benchmark_detector.py`` reports it
  separately).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, Mapping

import torch
import torch.nn as nn

from .train_loop import AMP_DTYPES

__all__ = ["compile_module", "inference_amp_dtype", "inference_context"]

logger = logging.getLogger(__name__)


def inference_amp_dtype(cfg: Any, device: torch.device) -> torch.dtype | None:
    """The autocast dtype evaluation and the Predictor run in (``None``: fp32), from ``train.amp``.

    Args:
        cfg: a LazyConfig with a ``train.amp`` block (older configs without ``inference`` read as
            ``None``).
        device: where the model runs.
    """
    amp = cfg.train.get("amp") or {}
    choice = amp.get("inference", None)
    if choice is None:
        use = bool(amp.get("enabled", False)) and device.type == "cuda"
    elif isinstance(choice, bool):
        use = choice
    else:
        raise ValueError(f"train.amp.inference must be true, false or null (as training, on CUDA), got {choice!r}")
    if not use:
        return None
    name = amp.get("dtype", "float16")
    if name not in AMP_DTYPES:
        raise ValueError(f"train.amp.dtype must be one of {list(AMP_DTYPES)}, got {name!r}")
    if AMP_DTYPES[name] is torch.float16 and device.type != "cuda":
        raise ValueError("train.amp.inference=True with train.amp.dtype='float16' needs CUDA; on the CPU set "
                         "train.amp.dtype=bfloat16 or train.amp.inference=False")
    return AMP_DTYPES[name]


@contextlib.contextmanager
def inference_context(device: torch.device, amp_dtype: torch.dtype | None = None) -> Iterator[None]:
    """``torch.inference_mode`` plus autocast in ``amp_dtype`` (none when ``None``).

    Inference mode skips autograd's version counters and views bookkeeping (cheaper than
    ``no_grad``); nothing computed inside may later take part in a backward pass, which holds for
    detections and evaluation results.
    """
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                                enabled=amp_dtype is not None):
        yield


def _submodule(model: nn.Module, path: str) -> nn.Module:
    module = model
    for part in [p for p in path.split(".") if p]:
        if not hasattr(module, part):
            raise ValueError(f"train.compile.module={path!r}: {type(module).__name__} has no attribute {part!r}")
        module = getattr(module, part)
    if not isinstance(module, nn.Module):
        raise ValueError(f"train.compile.module={path!r} is a {type(module).__name__}, not a module")
    return module


def compile_module(model: nn.Module, options: Mapping[str, Any] | None) -> nn.Module | None:
    """Compile the submodule named by ``options["module"]`` in place when ``options["enabled"]``.

    Args:
        model: the detector (or pre-training model).
        options: ``train.compile`` (``enabled``, ``module``, ``mode``, ``backend``, ``dynamic``);
            ``None`` or missing keys mean the defaults (not compiled).

    Returns:
        the compiled submodule, or ``None`` when compilation is off.
    """
    options = dict(options or {})
    unknown = set(options) - {"enabled", "module", "mode", "backend", "dynamic"}
    if unknown:
        raise ValueError(f"train.compile: unknown keys {sorted(unknown)} (known: enabled, module, mode, backend, "
                         "dynamic)")
    if not options.get("enabled", False):
        return None
    path = str(options.get("module", "backbone") or "")
    module = _submodule(model, path)
    kwargs = {k: options[k] for k in ("mode", "backend", "dynamic") if options.get(k) is not None}
    module.compile(**kwargs)
    logger.info("torch.compile of model.%s (%s); compiled on the first forward pass", path or "<whole model>",
                ", ".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults")
    return module
