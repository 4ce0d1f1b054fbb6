"""Load ConvMAE / FastConvMAE checkpoints into a :class:`~vitdet_bench.modeling.ConvViT`, with a report.

Two sources:

* ``convmae``: the official files of Alpha-VL/ConvMAE (``convmae_base.pth`` from ``main_pretrain.py``:
  ``{"model": ..., "optimizer", "epoch", "scaler", "args"}``; fine-tuned classifiers from
  ``main_finetune.py``). The model's names are the official ones, so keys load as they are; the
  pre-training parts are dropped and counted by reason: the MAE decoder (``decoder_*``,
  ``mask_token``), the multi-scale fusion (``stage1_output_decode``, ``stage2_output_decode``), the
  final ``norm`` and a classifier's ``fc_norm`` / ``head``.
* ``vitdet_bench``: this project's exports of ConvMAE / FastConvMAE pre-training (``meta["backbone"]
  == "convvit"``).

The position table is resized bicubically when the detector's pre-training grid differs from the
file's. A plain ViT file (MAE, MoCo v3, BEiT, DeiT, timm, a ViT export) is refused with a message
that says why: it has no convolution stages. Relative position (ViTDet's decomposed tables, the
shared bias tables of ConvMAE's detector) is fine-tuning only and is reported as expected missing.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from typing import Any

import torch
import torch.nn as nn
from timm.layers import resample_abs_pos_embed

from ..modeling.backbone.convvit import ConvViT
from ..utils.comm import unwrap_model
from .backbone import EXPORT_TAG, CanonicalCheckpoint, CheckpointFormatError, LoadReport, detect_format
from .io import CheckpointError, refuse_nonfinite, safe_torch_load

__all__ = [
    "CONVVIT_FORMATS",
    "adapt_to_convvit",
    "convvit_canonical",
    "detect_convvit_format",
    "find_convvit",
    "has_convvit_names",
    "load_convvit_checkpoint",
]

logger = logging.getLogger(__name__)

CONVVIT_FORMATS = ("convmae", "vitdet_bench")

_DROP_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^decoder_|^mask_token$"), "ConvMAE decoder (pre-training only)"),
    (re.compile(r"^stage[12]_output_decode\."), "ConvMAE multi-scale fusion into the decoder (pre-training only)"),
    (re.compile(r"^(norm|fc_norm)\."), "final norm (the detector has none)"),
    (re.compile(r"^head\."), "classification head"),
]


def find_convvit(model: nn.Module) -> tuple[ConvViT, str] | None:
    """The :class:`ConvViT` inside ``model`` (or ``model`` itself) and its dotted prefix; ``None`` if none."""
    model = unwrap_model(model)
    for name, module in model.named_modules():
        if isinstance(module, ConvViT):
            return module, (name + "." if name else "")
    return None


def _state_of(obj: Any) -> dict[str, torch.Tensor] | None:
    def is_state(x: Any) -> bool:
        return isinstance(x, dict) and len(x) > 0 and all(isinstance(v, torch.Tensor) for v in x.values())

    if is_state(obj):
        return obj
    if isinstance(obj, dict):
        for key in ("model", "module", "state_dict"):
            if is_state(obj.get(key)):
                return obj[key]
    return None


def _refuse_vit(state: dict[str, torch.Tensor], obj: Any, what: str) -> None:
    """Raise the message for a plain ViT file given to a ConvViT, naming the ViT keys it has."""
    try:
        fmt = detect_format(obj)
    except CheckpointError:
        fmt = "unknown"
    found = [k for k in ("patch_embed.proj.weight", "blocks.0.attn.qkv.weight") if k in state]
    raise CheckpointFormatError(
        f"{what} is a plain ViT checkpoint (format '{fmt}': {', '.join(found) or 'ViT names'}), not a ConvViT one: "
        "it has no convolution stages (patch_embed1-3, blocks1, blocks2) and its transformer blocks are "
        "'blocks.N', not 'blocks3.N'. Load it into a ViT detector (configs/COCO/mask_rcnn_vit_b_*.py), or give "
        "the ConvViT a ConvMAE / FastConvMAE checkpoint (projects/ConvMAE, projects/FastConvMAE)."
    )


def _unwrapped_state(obj: Any) -> dict[str, torch.Tensor]:
    """The state dict of a loaded file, DDP's ``module.`` prefix removed; raises naming what the file holds."""
    state = _state_of(obj)
    if state is None:
        keys = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointFormatError(f"no state dict found (top level: {keys})")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def has_convvit_names(obj: Any) -> bool:
    """Whether a loaded file's state dict names a ConvViT at its top level (an official ConvMAE /
    FastConvMAE file, DDP-saved or not), so it is read here and not as a plain ViT's."""
    state = _state_of(obj)
    return state is not None and ("patch_embed1.proj.weight" in state or "module.patch_embed1.proj.weight" in state)


def detect_convvit_format(obj: Any) -> str:
    """``"convmae"`` (an official ConvMAE / FastConvMAE file) or ``"vitdet_bench"`` (this project's
    ConvViT export); a plain ViT file, or a file with no ConvViT, raises with the reason."""
    if isinstance(obj, dict) and obj.get("format") == EXPORT_TAG:
        meta = dict(obj.get("meta", {}))
        if meta.get("backbone") != "convvit" or "patch_embed1.proj.weight" not in obj["model"]:
            _refuse_vit(dict(obj["model"]), obj, f"this vitdet_bench export (method '{meta.get('method', '?')}')")
        return "vitdet_bench"
    state = _unwrapped_state(obj)
    if "patch_embed1.proj.weight" not in state:
        if any(k.startswith(("blocks.", "patch_embed.")) for k in state) or any("base_encoder" in k for k in state):
            _refuse_vit(state, obj, "the file")
        raise CheckpointFormatError(f"no ConvViT weights (patch_embed1.*, blocks1-3.*) among {sorted(state)[:10]}")
    return "convmae"


def convvit_canonical(obj: Any, format: str = "auto") -> CanonicalCheckpoint:
    """A loaded ConvMAE file or export -> the ConvViT's key names, pre-training parts dropped.

    Args:
        obj: the loaded checkpoint.
        format: ``"auto"``, ``"convmae"`` or ``"vitdet_bench"``.

    Raises:
        CheckpointFormatError: the file is a plain ViT's, holds no state dict, or is not the format asked for.
    """
    if format not in ("auto",) + CONVVIT_FORMATS:
        raise ValueError(f"a ConvViT reads formats {('auto',) + CONVVIT_FORMATS}, got {format!r}")
    detected = detect_convvit_format(obj)
    if detected == "vitdet_bench":
        if format == "convmae":
            raise CheckpointFormatError("asked to read it as 'convmae', but it is a vitdet_bench export")
        return CanonicalCheckpoint(dict(obj["model"]), "vitdet_bench", meta=dict(obj.get("meta", {})))
    if format == "vitdet_bench":
        raise CheckpointFormatError("asked to read it as 'vitdet_bench', but it has no export tag "
                                    "(an official ConvMAE file?)")
    out = CanonicalCheckpoint({}, "convmae", dropped=Counter())
    for k, v in _unwrapped_state(obj).items():
        reason = next((why for pattern, why in _DROP_RULES if pattern.search(k)), None)
        if reason is None:
            out.state[k] = v
        else:
            out.dropped[reason] += 1
    return out


def _expected_missing(key: str) -> bool:
    # Relative position is learned in fine-tuning only (zero-initialised, as ConvMAE's detector).
    return key.endswith(("rel_pos_h", "rel_pos_w", "relative_position_bias_table"))


def adapt_to_convvit(ckpt: CanonicalCheckpoint, convvit: ConvViT,
                     source: str = "<state dict>") -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Fit canonical ConvViT weights to ``convvit``: the state dict to load and the report."""
    target = convvit.state_dict()
    report = LoadReport(source=source, format=ckpt.format, dropped=dict(ckpt.dropped))
    if ckpt.format == "vitdet_bench" and ckpt.meta.get("method"):
        report.origin = str(ckpt.meta["method"])
    out: dict[str, torch.Tensor] = {}
    for k, v in ckpt.state.items():
        if k not in target:
            report.unused.append((k, "no such parameter in the model"))
            continue
        want = tuple(target[k].shape)
        if tuple(v.shape) == want:
            out[k] = v
            report.loaded.append(k)
        elif k == "pos_embed" and v.dim() == 3 and v.shape[2] == want[2]:
            src, dst = math.isqrt(v.shape[1]), math.isqrt(want[1])
            if src * src != v.shape[1] or dst * dst != want[1]:
                raise CheckpointFormatError(f"pos_embed {tuple(v.shape)} -> {want}: grids are not square")
            # Bicubic without antialias, as ConvMAE's detector and MAE resize it.
            out[k] = resample_abs_pos_embed(v, new_size=[dst, dst], old_size=[src, src], num_prefix_tokens=0,
                                            interpolation="bicubic", antialias=False)
            report.resized.append((k, tuple(v.shape), want))
        else:
            report.unused.append((k, f"shape {tuple(v.shape)} does not fit the model's {want}"))
    for k in target:
        if k not in out:
            (report.missing_expected if _expected_missing(k) else report.missing_unexpected).append(k)
    return out, report


def load_convvit_checkpoint(model: nn.Module, path: str | dict, format: str = "auto", strict: bool = False,
                            source: str | None = None) -> LoadReport:
    """Load a ConvMAE / FastConvMAE checkpoint into the :class:`ConvViT` of ``model``.

    Args:
        model: a ConvViT or a detector holding one.
        path: a checkpoint file, or an already loaded checkpoint object.
        format: ``"auto"``, ``"convmae"`` (official files) or ``"vitdet_bench"`` (our exports).
        strict: raise when a key is missing unexpectedly or a checkpoint tensor is unused.
        source: the name to report for an in-memory checkpoint.

    Returns:
        the :class:`LoadReport` (also logged).
    """
    found = find_convvit(model)
    if found is None:
        raise CheckpointError(f"{type(model).__name__} contains no ConvViT to load a ConvMAE checkpoint into")
    convvit, _ = found
    source = source or (path if isinstance(path, str) else "<in-memory checkpoint>")
    obj = safe_torch_load(path) if isinstance(path, str) else path
    try:
        state, report = adapt_to_convvit(convvit_canonical(obj, format), convvit, source)
    except CheckpointFormatError as e:
        raise CheckpointFormatError(f"{source}: {e}") from None
    refuse_nonfinite(state, source)
    convvit.load_state_dict(state, strict=False)
    (logger.info if report.ok else logger.warning)("%s", report.summary())
    if strict and not report.ok:
        raise CheckpointError(f"strict backbone load failed:\n{report.summary()}")
    return report
