"""``train.init_checkpoint``: load any accepted file into a detector, report it once, and stop on gaps.

Three kinds of file initialise a detector, each read through its format (:mod:`.formats`):

* a whole detector (``detector``: this project's own checkpoint, names as the model's;
  ``detectron2``: a Detectron2 checkpoint, model-zoo ``.pkl`` or ``.pth``, renamed by its format
  module: class order, background slots);
* a pre-trained backbone (``mae``, ``mocov3``, ``beit``, ``deit``, ``timm``, ``maelite``,
  ``vitdet``, ``vitdet_bench`` exports), read by :mod:`.backbone`; the neck and heads then start
  from their initial values. A detector on the ConvViT reads ConvMAE / FastConvMAE files instead
  (``convmae``, ``vitdet_bench`` exports of those runs).

A pre-training model (``tools/pretrain_net.py``) takes a pre-training file whole instead (the
method's encoders, tokens and heads; :mod:`.method`; ConvMAE's ``convmae`` files too), and its own
run checkpoints as a detector does.

The format is the one named by ``format`` or, with ``"auto"``, the first whose recognition accepts
the file (a pre-training model takes a run checkpoint of this project, ``encoder.vit.*``, by name).
Whole-detector files pass their ViT part through :func:`.adapt.adapt_to_vit` too, so a ViTDet
checkpoint loads into a model of another input size (position tables resized). Then one
:class:`~.report.LoadReport` is logged, and with ``strict`` (``train.init_strict``, on by default)
any model tensor the file should have provided and did not (a checkpoint of another width, one
without the neck) stops the run with the missing names listed. Weights holding NaN or inf are
refused, naming the file, before anything is loaded.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn as nn

from ..utils.comm import unwrap_model
from .adapt import adapt_to_convvit, adapt_to_vit
from .backbone import convvit_canonical
from .formats import (
    CONVVIT_FORMATS,
    DETECTOR_FORMATS,
    INIT_FORMATS,
    CanonicalCheckpoint,
    CheckpointFormatError,
    DetectorCheckpointFormat,
    Probe,
    detect,
    find_state_dict,
    get_format,
    to_canonical,
    unrecognized,
)
from .io import CheckpointError, read_checkpoint, refuse_nonfinite
from .lineage import describe_init_source
from .method import load_method_checkpoint
from .report import LoadReport, compress_keys
from .target import find_convvit, find_vit, is_method_model

__all__ = ["INIT_FORMATS", "detect_init_format", "load_init_checkpoint"]

logger = logging.getLogger(__name__)


def detect_init_format(obj: Any, model: nn.Module) -> str:
    """Which format reads a loaded file into ``model``: one of :data:`INIT_FORMATS` other than
    ``"auto"`` (the formats' own recognition, in their detection order: this project's exports,
    Detectron2's and this project's detector checkpoints, ConvMAE's files, then the ViT formats).

    Raises:
        CheckpointFormatError: no format recognises it (saying what it holds).
    """
    probe = Probe.of(obj, model)
    found = detect(probe, ("detector", "convvit", "vit"))
    if found is None:
        raise CheckpointFormatError(
            f"neither a checkpoint of this detector (its own or Detectron2's names) nor a pre-trained ViT: "
            f"{unrecognized(probe)}")
    return found.name


def _fit_detector_state(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    vit_ckpt: CanonicalCheckpoint | None,
    report: LoadReport,
    resize_patch_embed: bool,
    rel_pos_resize: str,
) -> dict[str, torch.Tensor]:
    """Fit a whole detector's weights (our names) to ``model``: the ViT part through
    :func:`adapt_to_vit`, everything else by name and shape. Fills ``report``."""
    model = unwrap_model(model)
    own = model.state_dict()
    try:
        vit, prefix = find_vit(model)
    except CheckpointError:
        vit, prefix = None, None
    out: dict[str, torch.Tensor] = {}
    if vit is not None:
        if vit_ckpt is None:
            vit_ckpt = CanonicalCheckpoint({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                                           report.format)
        vit_state, vit_report = adapt_to_vit(vit_ckpt, vit, report.source, resize_patch_embed, rel_pos_resize)
        report.add(vit_report, prefix)
        out.update({prefix + k: v for k, v in vit_state.items()})
    for k, v in state.items():
        if prefix and k.startswith(prefix):
            continue
        if k not in own:
            report.unused.append((k, "no such tensor in the model"))
        elif tuple(v.shape) != tuple(own[k].shape):
            report.unused.append((k, f"shape {tuple(v.shape)} does not fit the model's {tuple(own[k].shape)}"))
        else:
            out[k] = v
            report.loaded.append(k)
    for k in own:
        if k in out or (prefix and k.startswith(prefix)):
            continue
        # BatchNorm's step counter: absent from checkpoints that dropped it; affects nothing here.
        (report.missing_expected if k.endswith("num_batches_tracked") else report.missing_unexpected).append(k)
    report.converted = [(k, how) for k, how in report.converted if k in out]
    return out


def _backbone_report(model: nn.Module, obj: Any, format: str, source: str, resize_patch_embed: bool,
                     rel_pos_resize: str) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """A pre-trained backbone file: the ViT from it, everything else from its initial values."""
    model = unwrap_model(model)
    vit, prefix = find_vit(model)
    ckpt = to_canonical(obj, format)
    vit_state, vit_report = adapt_to_vit(ckpt, vit, source, resize_patch_embed, rel_pos_resize)
    report = LoadReport(source=source, format=vit_report.format, origin=vit_report.origin, kind="Init checkpoint")
    report.add(vit_report, prefix)
    # The neck and heads are new for any backbone file: expected, and listed by module below.
    report.missing_expected += [k for k in model.state_dict() if not k.startswith(prefix)]
    return {prefix + k: v for k, v in vit_state.items()}, report


def _convvit_report(model: nn.Module, obj: Any, format: str, source: str) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """A ConvMAE / FastConvMAE file for a detector on the ConvViT: the ConvViT from it (a plain
    ViT file is refused, saying why), everything else from its initial values."""
    model = unwrap_model(model)
    convvit, prefix = find_convvit(model)
    ckpt = convvit_canonical(obj, format if format in CONVVIT_FORMATS else "auto")
    convvit_state, convvit_report = adapt_to_convvit(ckpt, convvit, source)
    report = LoadReport(source=source, format=convvit_report.format, origin=convvit_report.origin,
                        kind="Init checkpoint")
    report.add(convvit_report, prefix)
    report.missing_expected += [k for k in model.state_dict() if not k.startswith(prefix)]
    return {prefix + k: v for k, v in convvit_state.items()}, report


def load_init_checkpoint(
    model: nn.Module,
    path: str | dict,
    format: str = "auto",
    strict: bool = True,
    resize_patch_embed: bool = False,
    rel_pos_resize: str = "cubic",
    source: str | None = None,
) -> LoadReport:
    """Initialise ``model`` from a detector checkpoint (ours or Detectron2's) or a pre-trained backbone.

    Args:
        model: the detector (DDP-wrapped or not).
        path: the file (``.pth``, a Detectron2 model-zoo ``.pkl``), or an already loaded object.
        format: one of :data:`INIT_FORMATS`; ``"auto"`` picks the converter whose names the file uses.
        strict: raise when a model tensor is missing that the file should have provided (a file of
            another width or number of classes, a Detectron2 file without the neck); ``False``
            keeps those tensors at their initial values after the report.
        resize_patch_embed: resample patch-embed kernels of another patch size (ViT-H/14 -> 16).
        rel_pos_resize: BEiT bias-table resizing, "cubic" (BEiT) or "linear" (timm).
        source: the name to report for an in-memory object.

    Returns:
        the :class:`LoadReport` (also logged, at warning level when anything is missing or unused).

    Raises:
        CheckpointError: the file is unreadable or matches no converter; or, with ``strict``, a
            tensor is missing unexpectedly (the message lists them and the full report).
    """
    if format not in INIT_FORMATS:
        raise ValueError(f"init checkpoint format must be one of {INIT_FORMATS}, got {format!r}")
    source = source or (path if isinstance(path, str) else "<in-memory checkpoint>")
    obj = read_checkpoint(path) if isinstance(path, str) else path
    try:
        detected = detect_init_format(obj, model)
    except CheckpointFormatError as e:
        raise CheckpointFormatError(f"{source}: {e}") from None
    if format == "auto":
        format = detected
    elif format in DETECTOR_FORMATS and format != detected:
        raise CheckpointFormatError(f"{source}: asked to read it as '{format}', but it looks like '{detected}'")
    if is_method_model(model) and format not in DETECTOR_FORMATS:
        # A pre-training model continues from the whole method: encoder(s), tokens and heads.
        return load_method_checkpoint(model, obj, format, source, strict, resize_patch_embed, rel_pos_resize)
    fmt = get_format(format)
    if "vit" not in fmt.reads_into and "detector" not in fmt.reads_into and find_convvit(model) is None:
        raise CheckpointFormatError(f"{source}: a {fmt.label} checkpoint (a ConvViT: patch_embed1-4, blocks1-3), but "
                                    f"{type(unwrap_model(model)).__name__}'s backbone is a plain ViT: use a ConvViT "
                                    "detector (configs/COCO/mask_rcnn_convvit_b_convmae_25ep.py)")
    try:
        if isinstance(fmt, DetectorCheckpointFormat):
            state, _ = find_state_dict(obj)
            if state is None:
                raise CheckpointFormatError(f"no state dict found in a '{format}' checkpoint")
            state, vit_ckpt, report = fmt.detector_state(state, model, source)
            state = _fit_detector_state(model, state, vit_ckpt, report, resize_patch_embed, rel_pos_resize)
        elif find_convvit(model) is not None:
            state, report = _convvit_report(model, obj, format, source)
        else:
            state, report = _backbone_report(model, obj, format, source, resize_patch_embed, rel_pos_resize)
    except CheckpointFormatError as e:
        raise CheckpointFormatError(f"{source}: {e}") from None
    refuse_nonfinite(state, source)
    unwrap_model(model).load_state_dict(state, strict=False)
    (logger.info if report.ok else logger.warning)("%s", report.summary())
    if is_method_model(model):  # a pre-training run's own checkpoint
        if strict and report.unused:
            raise CheckpointError(
                f"{source}: {len(report.unused)} tensors of this checkpoint have no place in the "
                f"{unwrap_model(model).method} model (a run of another method, width or depth): "
                f"{', '.join(compress_keys([k for k, _ in report.unused])[:12])}. Set train.init_strict=False "
                f"to load the rest (the encoder of another method's run starts this one; its own parts start "
                f"from their initial values).\n{report.summary()}"
            )
        if hasattr(unwrap_model(model), "init_source"):
            unwrap_model(model).init_source = describe_init_source(obj, format, source)
    if strict and report.missing_unexpected:
        missing, where = report.missing_unexpected, ""
        if isinstance(fmt, DetectorCheckpointFormat):  # name them as the user's file would
            missing, where = fmt.file_names(missing, model)
        names = compress_keys(missing)
        raise CheckpointError(
            f"{source}: {len(missing)} tensors of the model are missing from this '{format}' checkpoint "
            f"(or do not fit it){where}: {', '.join(names)}. "
            "Set train.init_strict=False to start them from their initial values instead (e.g. new "
            f"class heads for another dataset).\n{report.summary()}"
        )
    return report
