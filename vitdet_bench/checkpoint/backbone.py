"""Load a pre-trained backbone checkpoint into a ViT (or ConvMAE's ConvViT), with a report.

Three steps, each with one home:

1. the file is read by :func:`.io.read_checkpoint` (``torch.load(weights_only=True)``, the
   ``argparse.Namespace`` of MAE / DeiT / BEiT training files allow-listed; Detectron2 ``.pkl``
   files by a restricted unpickler);
2. its format (:mod:`.formats`, detected or named) turns it into the detection backbone's names,
   dropping and counting by reason what a backbone never uses (:func:`.formats.to_canonical`);
3. :mod:`.adapt` fits those weights to the model (position and bias tables resized, layer scale
   and q / v biases matched) and classifies what is missing by the format's rule.

Every load returns a :class:`LoadReport` (and logs it): loaded, resized (from -> to), converted,
missing keys split into those the format is known not to have and those it should have had, and
checkpoint keys the model did not take. ``tools/convert_checkpoint.py`` writes step 2's output as
a file (:func:`.formats.save_backbone_export`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch.nn as nn

from .adapt import adapt_to_convvit, adapt_to_vit
from .formats import (
    CONVVIT_FORMATS,
    CanonicalCheckpoint,
    CheckpointFormatError,
    Probe,
    detect,
    to_canonical,
)
from .formats.convmae import refuse_unrecognized
from .io import CheckpointError, read_checkpoint, refuse_nonfinite
from .report import LoadReport
from .target import find_convvit, find_vit

__all__ = [
    "convvit_canonical",
    "detect_convvit_format",
    "load_backbone_checkpoint",
    "load_convvit_checkpoint",
]

logger = logging.getLogger(__name__)


def load_backbone_checkpoint(
    backbone: nn.Module,
    path: str | dict,
    format: str = "auto",
    resize_patch_embed: bool = False,
    rel_pos_resize: str = "cubic",
    strict: bool = False,
    source: str | None = None,
) -> LoadReport:
    """Load a pre-trained checkpoint into ``backbone`` (a ViT or ConvViT, or any model holding one).

    Args:
        backbone: the :class:`ViT` (or :class:`ConvViT`) or a detector containing one.
        path: a checkpoint file, or an already loaded checkpoint object.
        format: one of :data:`.formats.FORMATS` (a ConvViT: :data:`.formats.CONVVIT_FORMATS`) or "auto".
        resize_patch_embed: resample patch-embed kernels of another patch size (e.g. ViT-H/14 -> 16).
        rel_pos_resize: BEiT bias-table resizing, "cubic" (BEiT) or "linear" (timm).
        strict: raise when a key is missing unexpectedly or a checkpoint tensor is unused.
        source: the name to report for an in-memory checkpoint.

    Returns:
        the :class:`LoadReport` (also logged).
    """
    if find_convvit(backbone) is not None:  # ConvMAE's hybrid backbone reads ConvMAE files (or refuses ViT ones)
        return load_convvit_checkpoint(backbone, path, format=format, strict=strict, source=source)
    vit, _ = find_vit(backbone)
    source = source or (path if isinstance(path, str) else "<in-memory checkpoint>")
    obj = read_checkpoint(path) if isinstance(path, str) else path
    try:
        ckpt = to_canonical(obj, format)
        state, report = adapt_to_vit(ckpt, vit, source, resize_patch_embed, rel_pos_resize)
    except CheckpointFormatError as e:
        raise CheckpointFormatError(f"{source}: {e}") from None
    vit.load_state_dict(state, strict=False)
    (logger.info if report.ok else logger.warning)("%s", report.summary())
    if strict and not report.ok:
        raise CheckpointError(f"strict backbone load failed:\n{report.summary()}")
    return report


def detect_convvit_format(obj: Any) -> str:
    """The ConvViT format of a loaded file (:data:`.formats.CONVVIT_FORMATS`); a plain ViT file, or
    a file with no ConvViT, raises with the reason."""
    return convvit_canonical(obj).format


def convvit_canonical(obj: Any, format: str = "auto") -> CanonicalCheckpoint:
    """A loaded ConvMAE file or export -> the ConvViT's key names, pre-training parts dropped.

    Args:
        obj: the loaded checkpoint.
        format: ``"auto"`` or one of :data:`.formats.CONVVIT_FORMATS`.

    Raises:
        CheckpointFormatError: the file is a plain ViT's, holds no state dict, or is not the format asked for.
    """
    if format not in ("auto",) + CONVVIT_FORMATS:
        raise ValueError(f"a ConvViT reads formats {('auto',) + CONVVIT_FORMATS}, got {format!r}")
    found = detect(Probe.of(obj), ("convvit",))
    if found is None:
        refuse_unrecognized(obj)
    ckpt = found.canonical_convvit(obj)  # an export of a plain ViT is refused here, saying why
    if format not in ("auto", found.name):
        raise CheckpointFormatError(f"asked to read it as '{format}', but it is a '{found.name}' file ({found.label})")
    return ckpt


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
    obj = read_checkpoint(path) if isinstance(path, str) else path
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
