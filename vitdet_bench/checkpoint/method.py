"""Whole pre-training methods and their official checkpoints, both ways.

The detector takes only the backbone from a pre-training file (:mod:`.backbone`). Continued
pre-training (``train.init_checkpoint`` of ``tools/pretrain_net.py``) takes the whole method:
:func:`load_method_checkpoint` fills every tensor of a pre-training model (``vitdet_bench.pretrain``)
from a released file, and :func:`to_official` writes a model trained here in the official
repository's layout (``tools/convert_checkpoint.py --to mae|beit|mocov3|deit|convmae``), so it
continues in the official code.

Each format module (:mod:`.formats`) states its whole-method layout (:class:`~.formats.OfficialLayout`:
container, prefix, encoders, the method's other parts, what it drops, how the official code
resumes) and what differs when reading or writing it; the layouts' key names are pinned in
``tests/fixtures/official_key_lists.json``. Here a pre-training encoder holds the ViT
(``encoder.vit.*``, the detector's names) with ``encoder.cls_token`` and ``encoder.norm``;
ConvMAE's encoder holds a ConvViT (``encoder.convvit.*``, ConvMAE's own names) with its fusion convs
and final norm. Each backbone goes through :mod:`.adapt` (position tables and BEiT's bias table
resized as the detector's are, layer scale / q-v biases matched); the other tensors load by name,
position tables resized bicubically. The optimizer, scaler, epoch and args of a training file are
not weights: a continued run starts its own optimizer and schedule.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn as nn

from ..modeling.backbone.convvit import ConvViT
from ..utils.comm import unwrap_model
from .adapt import adapt_to_convvit, adapt_to_vit, fit_pos_embed
from .backbone import detect_convvit_format
from .formats import (
    CHECKPOINT_FORMATS,
    METHOD_LAYOUTS,
    WRITABLE_LAYOUTS,
    CanonicalCheckpoint,
    CheckpointFormat,
    CheckpointFormatError,
    Probe,
    find_state_dict,
    get_format,
    resolve_format,
    to_canonical,
)
from .io import CheckpointError, refuse_nonfinite
from .lineage import describe_init_source
from .report import LoadReport, compress_keys, group_keys
from .target import backbone_of, model_method_label

__all__ = ["fit_method_state", "load_method_checkpoint", "to_official"]

logger = logging.getLogger(__name__)

# A momentum (EMA) copy that the file lacks starts as a copy of its online side, as MoCo v3 builds it.
_EMA_COPIES = (("momentum_encoder.", "encoder."), ("momentum_projector.", "projector."))


def _resolve_method_format(obj: Any, format: str, kind: str, label: str) -> CheckpointFormat:
    """The format to read a whole-method file as, for a model whose encoder holds a ``kind``
    backbone ("vit" or "convvit"); a file of the other kind raises with what it is."""
    if kind == "convvit":
        detected = detect_convvit_format(obj)  # a plain ViT file raises: it has no convolution stages
        if format not in ("auto", detected):
            raise CheckpointFormatError(f"asked to read it as '{format}', but it is a '{detected}' file (the "
                                        f"{label} model's ConvViT reads 'convmae' files and 'vitdet_bench' exports)")
        return get_format(detected)
    probe = Probe.of(obj)
    convvit = next((f for f in CHECKPOINT_FORMATS if f.reads_into == ("convvit",)
                    and (f.name == format or f.recognizes(probe))), None)
    if convvit is not None:
        raise CheckpointFormatError(
            f"a {convvit.label} checkpoint (a ConvViT: patch_embed1-4, blocks1-3), but the {label} model's encoder "
            "is a plain ViT: continue it with a ConvMAE / FastConvMAE config (projects/ConvMAE/configs, "
            "projects/FastConvMAE/configs)")
    return get_format(resolve_format(obj, format))


def _canonical_encoder(sub: dict[str, torch.Tensor], fmt: CheckpointFormat, meta: dict) -> CanonicalCheckpoint:
    """One encoder's ViT tensors in the detector's names (BEiT's ``gamma_N`` -> ``lsN.gamma``, index
    buffers dropped), labelled with the file's format so the report and expected misses follow it."""
    if fmt.detector_names:
        return CanonicalCheckpoint(dict(sub), fmt.name, meta=dict(meta))
    ckpt = to_canonical(sub, "auto")
    ckpt.format = fmt.name
    return ckpt


def _fit_plain(key: str, value: torch.Tensor, own: dict[str, torch.Tensor], label: str, report: LoadReport,
               out: dict[str, torch.Tensor], restarted: set[str]) -> None:
    """Load one non-backbone tensor by name: as it is, a position table resized, or a classifier of
    another class count restarted (DeiT's fine-tuning rule); anything else is reported unused."""
    if key not in own:
        module = key.split(".")[0]
        report.unused.append((key, f"the {label} model has no {module}"))
        return
    want = tuple(own[key].shape)
    if tuple(value.shape) == want:
        out[key] = value
        report.loaded.append(key)
    elif key.endswith("pos_embed") and value.ndim == 3 and value.shape[-1] == want[-1]:
        has_cls = math.isqrt(want[1]) ** 2 != want[1]
        out[key] = fit_pos_embed(value, own[key], has_cls)
        report.resized.append((key, tuple(value.shape), want))
    elif key in ("head.weight", "head.bias") and value.shape[1:] == own[key].shape[1:]:
        why = f"classification head for {value.shape[0]} classes (the model has {want[0]}): re-initialised"
        report.dropped[why] = report.dropped.get(why, 0) + 1
        restarted.add(key)
    else:
        report.unused.append((key, f"shape {tuple(value.shape)} does not fit the model's {want}"))


def _copy_missing_ema(own: dict[str, torch.Tensor], out: dict[str, torch.Tensor], report: LoadReport) -> None:
    """A momentum copy the file lacks entirely starts as a copy of its (loaded) online side."""
    for copy, online in _EMA_COPIES:
        keys = [k for k in own if k.startswith(copy)]
        if not keys or any(k in out for k in keys):
            continue
        how = f"copied from {online}* (the file has no {copy[:-1]}; MoCo v3 starts it as a copy)"
        for k in keys:
            src = online + k[len(copy):]
            out[k] = (out[src] if src in out else own[src]).clone()
            report.converted.append((k, how))


def _arch(state: dict[str, torch.Tensor]) -> tuple[int, int] | None:
    """``(width, depth)`` of a ViT state in the detector's names (of a ConvViT's stage 3), or ``None``."""
    for patch, blocks in (("patch_embed.proj.weight", "blocks."), ("patch_embed3.proj.weight", "blocks3.")):
        weight = state.get(patch)
        if weight is not None:
            return int(weight.shape[0]), len({k.split(".")[1] for k in state if k.startswith(blocks)})
    return None


def _mismatch_message(model: nn.Module, source: str, fmt: CheckpointFormat, report: LoadReport,
                      file_arch: tuple[int, int] | None, file_method: str) -> str:
    """Why a strict load failed, naming the file, and what to do."""
    label = model_method_label(model)
    missing = group_keys(report.missing_unexpected, limit=12)
    unused = group_keys([k for k, _ in report.unused], limit=12)
    lines = [f"{source}: this '{fmt.name}' checkpoint does not hold the whole {label} model "
             f"({len(report.missing_unexpected)} model tensors missing, {len(report.unused)} file tensors unused)."]
    _, vit = backbone_of(model.encoder)
    hint = fmt.mismatch_hint(report)
    if file_arch and file_arch != (vit.embed_dim, vit.depth):
        lines.append(f"The file's encoder is {file_arch[0]} wide with {file_arch[1]} blocks, the model's "
                     f"{vit.embed_dim} wide with {vit.depth}: set model.encoder's embed_dim / depth / num_heads "
                     "(or arch) to the file's.")
    elif file_method and file_method != model.method:
        lines.append(f"The file's method is {model_method_label(model, file_method)}, the model's {label}: point "
                     f"train.init_checkpoint at a checkpoint of {label}, or set train.init_strict=False to take the "
                     "tensors that fit (the rest starts from its initial values).")
    elif hint:
        lines.append(hint)
    if missing:
        lines.append(f"Missing: {', '.join(missing)}.")
    if unused:
        lines.append(f"Unused: {', '.join(unused)}.")
    lines.append("train.init_strict=False starts the missing tensors from their initial values and ignores the "
                 f"unused ones.\n{report.summary()}")
    return "\n".join(lines)


def fit_method_state(model: nn.Module, obj: Any, format: str, source: str, resize_patch_embed: bool = False,
                     rel_pos_resize: str = "cubic") -> tuple[dict[str, torch.Tensor], LoadReport, dict]:
    """Fit a whole method checkpoint to a pre-training ``model``.

    Args:
        model: a pre-training model (DDP-wrapped or not).
        obj: the loaded file.
        format: ``"auto"`` or the file's format.
        source: the file's name, for the report.
        resize_patch_embed: resample patch-embed kernels of another patch size.
        rel_pos_resize: BEiT bias-table resizing, "cubic" (BEiT) or "linear" (timm).

    Returns:
        the state to load, the report and ``{"format", "file_arch", "file_method"}`` for messages
        (``format`` the :class:`~.formats.CheckpointFormat` read).
    """
    model = unwrap_model(model)
    label = model_method_label(model)
    kind, _ = backbone_of(model.encoder)
    fmt = _resolve_method_format(obj, format, kind, label)
    split = fmt.split_method_file(obj)
    own = model.state_dict()
    modules = dict(model.named_modules())
    report = LoadReport(source=source, format=fmt.name, kind="Init checkpoint", dropped=dict(split.dropped))
    out: dict[str, torch.Tensor] = {}
    covered: set[str] = set()  # model keys a backbone report has classified
    file_arch = None
    for ours, sub in split.encoders.items():
        found = backbone_of(modules.get(ours[:-1]))
        if not sub:
            continue
        if found is None:
            report.unused += [(ours + kind + "." + k, f"the {label} model has no {ours[:-1]}") for k in sub]
            continue
        name, backbone = found
        if isinstance(backbone, ConvViT):
            ckpt = CanonicalCheckpoint(dict(sub), fmt.name, meta=dict(split.meta))
            state, sub_report = adapt_to_convvit(ckpt, backbone, source)
        else:
            ckpt = _canonical_encoder(sub, fmt, split.meta)
            state, sub_report = adapt_to_vit(ckpt, backbone, source, resize_patch_embed, rel_pos_resize)
        file_arch = file_arch or _arch(ckpt.state)
        prefix = f"{ours}{name}."
        report.origin = report.origin or sub_report.origin
        report.add(sub_report, prefix)
        out.update({prefix + k: v for k, v in state.items()})
        covered.update(prefix + k for k in backbone.state_dict())
    new_parts = fmt.fit_parts(split.plain, model, report)  # e.g. MAE-Lite's adapter of the distilled block
    restarted: set[str] = set()
    for key, value in split.plain.items():
        _fit_plain(key, value, own, label, report, out, restarted)
    _copy_missing_ema(own, out, report)
    for k in own:
        if k in out or k in covered:
            continue
        expected = (k in restarted or k.endswith("num_batches_tracked")
                    or any(k.startswith(prefix) for prefix in new_parts))
        (report.missing_expected if expected else report.missing_unexpected).append(k)
    file_method = split.meta.get("method", "") if fmt.detector_names else fmt.layout.method
    return out, report, {"format": fmt, "file_arch": file_arch, "file_method": file_method}


def load_method_checkpoint(model: nn.Module, obj: Any, format: str = "auto", source: str = "<in-memory checkpoint>",
                           strict: bool = True, resize_patch_embed: bool = False,
                           rel_pos_resize: str = "cubic") -> LoadReport:
    """Load a whole method checkpoint (see the module docstring) into a pre-training ``model``.

    Args:
        model: a pre-training model (:func:`.target.is_method_model`), DDP-wrapped or not.
        obj: the loaded file (:func:`.io.read_checkpoint`).
        format: ``"auto"`` or one of :data:`.formats.FORMATS` (checked against the file's names).
        source: the file's name, for the report and messages.
        strict: raise when a model tensor is missing that the file should have provided, or a file
            tensor has no place in the model (another method's parts, another width or depth).
        resize_patch_embed: resample patch-embed kernels of another patch size.
        rel_pos_resize: BEiT bias-table resizing, "cubic" (BEiT) or "linear" (timm).

    Returns:
        the :class:`LoadReport` (also logged). The model's ``init_source`` (when it has one) is set
        to :func:`.lineage.describe_init_source` for the export's lineage.

    Raises:
        CheckpointError: naming the file: it matches no format, or (``strict``) it does not hold
            the whole model; the message says what differs and lists the report.
    """
    unwrapped = unwrap_model(model)
    try:
        state, report, info = fit_method_state(unwrapped, obj, format, source, resize_patch_embed, rel_pos_resize)
    except CheckpointFormatError as e:
        raise CheckpointFormatError(f"{source}: {e}") from None
    (logger.info if report.ok else logger.warning)("%s", report.summary())
    if strict and not report.ok:  # before loading: the model keeps its initial values
        raise CheckpointError(_mismatch_message(unwrapped, source, info["format"], report, info["file_arch"],
                                                info["file_method"]))
    refuse_nonfinite(state, source)
    unwrapped.load_state_dict(state, strict=False)
    container = find_state_dict(obj)[1]
    ignored = [k for k in obj if k not in (container, "meta", "format", "version")] if container else []
    if ignored:
        logger.info("%s: not loaded (a continued run starts its own optimizer and schedule): %s", source,
                    ", ".join(ignored))
    if hasattr(unwrapped, "init_source"):
        unwrapped.init_source = describe_init_source(obj, info["format"].name, source)
    return report


# --- our model -> the official layout ------------------------------------------------------------

def _encoder_to_official(enc: dict[str, torch.Tensor], fmt: CheckpointFormat, source: str, where: str,
                         backbone: str = "vit") -> dict[str, torch.Tensor]:
    """One encoder (``cls_token``, ``norm.*``, ``vit.*`` / ``convvit.*`` relative to ``encoder.``) in
    the official names (the format's renames), checked against the official encoder's names."""
    names = {(k[len(backbone) + 1:] if k.startswith(backbone + ".") else k): v for k, v in enc.items()}
    out = fmt.encoder_names(names, source, where)
    fmt.check_encoder(out, source, where)
    return out


def to_official(state: dict[str, torch.Tensor], to: str, source: str = "<state dict>") -> dict[str, Any]:
    """A whole pre-training model's state dict (our names) -> the official repository's file.

    Args:
        state: the model's ``state_dict()`` (a run's ``model_*.pth`` ``"model"`` entry).
        to: a writable one of :data:`.formats.METHOD_LAYOUTS` (:data:`.formats.WRITABLE_LAYOUTS`).
        source: the file name, for messages.

    Returns:
        the object to ``torch.save``: ``{"model": ...}`` for MAE, BEiT, DeiT and ConvMAE (their
        ``--resume`` loads it strictly and, without an optimizer, starts at epoch 0); for MoCo v3 ``{"epoch": 0,
        "arch", "state_dict": {"module.…"}, "optimizer", "scaler"}`` with fresh optimizer and scaler
        states, which its ``--resume`` requires.

    Raises:
        CheckpointError: ``state`` lacks a part of the method, or holds a tensor the official model
            has no place for (naming them).
    """
    if to not in WRITABLE_LAYOUTS:
        why = f" ({get_format(to).label}'s resume: {METHOD_LAYOUTS[to].resume})" if to in METHOD_LAYOUTS else ""
        raise ValueError(f"official layout to write must be one of {WRITABLE_LAYOUTS}, got {to!r}{why}")
    fmt = get_format(to)
    layout, label = fmt.layout, fmt.label
    used: set[str] = set()
    official: dict[str, torch.Tensor] = {}
    our_parts = sorted(((ours, theirs) for theirs, ours in layout.parts), key=lambda p: -len(p[0]))
    for theirs, ours in layout.encoders:
        # ConvMAE's fusion convs live in our encoder but are parts of the official model's top level.
        enc = {k[len(ours):]: v for k, v in state.items()
               if k.startswith(ours) and not any(k.startswith(p) for p, _ in our_parts)}
        if not enc:
            raise CheckpointError(f"{source}: no {ours}* tensors: not a whole {label} model of this project "
                                  "(convert a pre-training run's model_final.pth)")
        used.update(ours + k for k in enc)
        converted = _encoder_to_official(enc, fmt, source, ours[:-1], layout.backbone)
        official.update({theirs + k: v for k, v in converted.items()})
    for ours, theirs in our_parts:
        keys = [k for k in state if k.startswith(ours)]
        if not keys:
            raise CheckpointError(f"{source}: no {ours}* tensors, which {label}'s official model has: "
                                  f"not a {label} run")
        used.update(keys)
        official.update({theirs + k[len(ours):]: state[k] for k in keys})
    extra = [k for k in state if k not in used]
    if extra:
        raise CheckpointError(f"{source}: {', '.join(compress_keys(extra)[:12])} have no place in "
                              f"{label}'s official layout: not a {label} run of this project")
    weights = {layout.prefix + k: v.detach().cpu().contiguous() for k, v in official.items()}
    return fmt.official_file(weights, state)
