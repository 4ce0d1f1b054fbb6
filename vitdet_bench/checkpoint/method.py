"""Whole pre-training methods and their official checkpoints, both ways.

The detector takes only the ViT from a pre-training file (:mod:`.backbone`). Continued
pre-training (``train.init_checkpoint`` of ``tools/pretrain_net.py``) takes the whole method:
:func:`load_method_checkpoint` fills every tensor of a pre-training model (``vitdet_bench.pretrain``)
from a released file, and :func:`to_official` writes a model trained here in the official
repository's layout (``tools/convert_checkpoint.py --to mae|beit|mocov3|deit|convmae``), so it
continues in the official code. The layouts (``shared/reference/checkpoint_formats.json``; ConvMAE's
and MAE-Lite's from their repositories' code, ``tests/fixtures/official_key_lists.json``):

========  ===================================  ==========================================  ==============================
format    container                            encoder(s) -> ``encoder.*`` here            the method's other parts
========  ===================================  ==========================================  ==============================
mae       ``{"model", "optimizer", "epoch",    ``cls_token``, ``pos_embed``,               ``mask_token``, ``decoder_*``
          "scaler", "args"}``                  ``patch_embed``, ``blocks``, ``norm``
beit      the same                             no ``pos_embed``; ``rel_pos_bias`` (3 cls   ``mask_token``, ``lm_head``
                                               rows), ``gamma_1/2``, ``q_bias/v_bias``
mocov3    ``{"epoch", "arch", "state_dict",    ``module.base_encoder.*`` ->                ``...base_encoder.head`` ->
          "optimizer", "scaler"}``             ``encoder.*``; ``module.momentum_encoder.*``  ``projector``; ``...momentum_
                                               -> ``momentum_encoder.*``                   encoder.head`` -> ``momentum_
                                                                                           projector``; ``predictor``
deit      ``{"model", ...}`` (timm: flat)      as mae                                      ``head`` (the classifier)
convmae   as mae (``main_pretrain.py``)        ``patch_embed1-4``, ``blocks1-3``,          ``stage1/2_output_decode`` ->
                                               ``pos_embed`` -> ``encoder.convvit.*``;     ``encoder.*``; ``mask_token``,
                                               ``norm`` -> ``encoder.norm``                ``decoder_*``
maelite   ``{"start_epoch", "model",           ``module.model.*`` (MAE's names) ->         ``module.model.mask_token`` /
          "optimizer", "scheduler",            ``encoder.*``; read only (its ``--resume``  ``decoder_*``; distillation:
          "scaler", "best_top1", ...}``        needs its optimizer and scheduler states)   ``module.attn_adapter.adapterK``
                                                                                           -> ``attn_adapter``;
                                                                                           ``module.tch_model.*`` dropped
========  ===================================  ==========================================  ==============================

Here a :class:`~vitdet_bench.pretrain.PretrainEncoder` holds the ViT (``encoder.vit.*``, the
detector's names) and wraps it with ``encoder.cls_token`` and ``encoder.norm``; ConvMAE's encoder
holds a :class:`~vitdet_bench.modeling.ConvViT` (``encoder.convvit.*``, ConvMAE's own names) with
its fusion convs and final norm. Each ViT goes through :func:`.backbone.adapt_to_vit` (position
tables and BEiT's bias table resized as the detector's are, layer scale / q-v biases matched), a
ConvViT through :func:`.convmae.adapt_to_convvit`; the other tensors load by name, position tables
resized bicubically. The optimizer, scaler, epoch and args of a training file are not weights: a
continued run starts its own optimizer and schedule. The model is recognised by its ``method`` and
``encoder`` attributes (this package does not import ``vitdet_bench.pretrain``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from timm.models.beit import gen_relative_position_index

from ..modeling.backbone.convvit import ConvViT
from ..modeling.backbone.rel_pos import NUM_CLS_ENTRIES
from ..modeling.backbone.vit import ViT
from ..utils.comm import unwrap_model
from .backbone import (
    CanonicalCheckpoint,
    CheckpointFormatError,
    adapt_to_vit,
    find_state_dict,
    fit_pos_embed,
    resolve_format,
    to_canonical,
)
from .convmae import adapt_to_convvit, detect_convvit_format, has_convvit_names
from .io import CheckpointError, read_checkpoint, refuse_nonfinite
from .report import LoadReport, compress_keys, group_keys

__all__ = [
    "METHOD_LAYOUTS",
    "WRITABLE_LAYOUTS",
    "OfficialLayout",
    "INIT_SOURCE_FILE",
    "describe_init_source",
    "fit_method_state",
    "is_method_model",
    "lineage_text",
    "load_method_checkpoint",
    "to_official",
]

logger = logging.getLogger(__name__)

# Where a pre-training run keeps the record of its init file (written by the pre-training engine),
# so its resumed run and a run continued from its checkpoint still know the lineage.
INIT_SOURCE_FILE = "init_source.json"


@dataclass(frozen=True)
class OfficialLayout:
    """How an official repository names one method's whole checkpoint.

    Args:
        format: the backbone format name (:data:`.backbone.FORMATS`).
        method: the ``method`` of the model here that holds the same tensors.
        label: the method's name in messages.
        container: the top-level key of the weights (``""``: a flat state dict).
        prefix: the prefix of every weight name (``"module."`` for MoCo v3's DDP-wrapped model).
        encoders: ``(official prefix, our prefix)`` of each ViT encoder.
        parts: ``(official prefix, our prefix)`` of the method's other tensors; matched first.
        resume: how the official code continues from the file (for the log).
        backbone: the encoder's attribute holding the backbone (``"vit"``; ConvMAE: ``"convvit"``).
        drops: ``(official prefix, reason)`` of tensors the file holds and the method here does not
            (MAE-Lite's frozen teacher, rebuilt from its own file): counted in the report, not loaded.
        writable: :func:`to_official` can write the layout so that the official code continues from it.
    """

    format: str
    method: str
    label: str
    container: str = "model"
    prefix: str = ""
    encoders: tuple[tuple[str, str], ...] = (("", "encoder."),)
    parts: tuple[tuple[str, str], ...] = ()
    resume: str = ""
    backbone: str = "vit"
    drops: tuple[tuple[str, str], ...] = ()
    writable: bool = True


METHOD_LAYOUTS: dict[str, OfficialLayout] = {
    "mae": OfficialLayout("mae", "mae", "MAE", parts=(("mask_token", "mask_token"), ("decoder_", "decoder_")),
                          resume="main_pretrain.py --resume FILE (loads 'model'; no optimizer: epoch 0, a new schedule)"),
    "beit": OfficialLayout("beit", "beit", "BEiT", parts=(("mask_token", "mask_token"), ("lm_head.", "lm_head.")),
                           resume="run_beit_pretraining.py --resume FILE (loads 'model'; no optimizer: epoch 0)"),
    "mocov3": OfficialLayout(
        "mocov3", "mocov3", "MoCo v3", container="state_dict", prefix="module.",
        encoders=(("base_encoder.", "encoder."), ("momentum_encoder.", "momentum_encoder.")),
        parts=(("base_encoder.head.", "projector."), ("momentum_encoder.head.", "momentum_projector."),
               ("predictor.", "predictor.")),
        resume="main_moco.py --resume FILE (a fresh AdamW and GradScaler state, as its --resume needs; epoch 0)"),
    "deit": OfficialLayout("deit", "supervised", "DeiT (supervised)", parts=(("head.", "head."),),
                           resume="DeiT main.py --resume FILE, or --finetune FILE for another class count"),
    # Alpha-VL/ConvMAE models_convmae.MaskedAutoencoderConvViT, saved by main_pretrain.py (MAE's
    # misc.save_model): the ConvViT at the top level, its fusion convs and final norm beside it.
    "convmae": OfficialLayout(
        "convmae", "convmae", "ConvMAE", backbone="convvit",
        parts=(("mask_token", "mask_token"), ("decoder_", "decoder_"),
               ("stage1_output_decode.", "encoder.stage1_output_decode."),
               ("stage2_output_decode.", "encoder.stage2_output_decode.")),
        resume="main_pretrain.py --resume FILE (MAE's misc.load_model: loads 'model'; no optimizer: epoch 0)"),
    # wangsr126/mae-lite tools/train.py: DDP(MAE(exp, MaskedAutoencoderViT)).state_dict() under
    # "model" (module.model.*; model.* from one GPU); the distillation wrapper adds its frozen
    # teacher (tch_model, MAE's encoder) and attn_adapter.adapter{block - 1} (a 1x1 conv).
    "maelite": OfficialLayout(
        "maelite", "maelite", "MAE-Lite", prefix="module.", encoders=(("model.", "encoder."),),
        parts=(("model.mask_token", "mask_token"), ("model.decoder_", "decoder_"), ("attn_adapter.", "attn_adapter.")),
        drops=(("tch_model.", "MAE-Lite's frozen teacher (the distillation teacher is built from teacher.path)"),),
        resume="none: mae-lite's train.py --resume also needs its optimizer, scheduler and scaler states",
        writable=False),
}
# The layouts tools/convert_checkpoint.py --to writes (MAE-Lite's is read only).
WRITABLE_LAYOUTS = tuple(k for k, v in METHOD_LAYOUTS.items() if v.writable)
# A flat timm ViT is DeiT's layout without the container; this project's exports and a detector's
# ViT hold an encoder and nothing else.
_ENCODER_ONLY = OfficialLayout("vitdet_bench", "", "backbone-only")
# MAE-Lite names its attention adapter after the distilled block (0-based): attn_adapter.adapter11
# for the last of 12 blocks (distill_attn_idx=(12,)); the model here has one, ``attn_adapter``.
_MAELITE_ADAPTER = re.compile(r"^attn_adapter\.adapter(\d+)\.weight$")
# A momentum (EMA) copy that the file lacks starts as a copy of its online side, as MoCo v3 builds it.
_EMA_COPIES = (("momentum_encoder.", "encoder."), ("momentum_projector.", "projector."))
_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _label(model: nn.Module, method: str | None = None) -> str:
    """A method's name in messages, as the model's class states it (``label``; ``label_of`` for another
    method, a file's)."""
    method = model.method if method is None else method
    label_of = getattr(model, "label_of", None)
    return label_of(method) if callable(label_of) else method


def is_method_model(model: nn.Module) -> bool:
    """Whether ``model`` is a pre-training method here (has ``method`` and an ``encoder`` with a
    ViT, or ConvMAE's with a ConvViT)."""
    model = unwrap_model(model)
    return bool(getattr(model, "method", "")) and _backbone_of(getattr(model, "encoder", None)) is not None


def _backbone_of(encoder: nn.Module | None) -> tuple[str, ViT | ConvViT] | None:
    """``(attribute, module)`` of an encoder's backbone: ``("vit", ViT)`` or ``("convvit", ConvViT)``."""
    for name, kind in (("vit", ViT), ("convvit", ConvViT)):
        module = getattr(encoder, name, None)
        if isinstance(module, kind):
            return name, module
    return None


def _layout_of(format: str) -> OfficialLayout:
    if format == "timm":
        return OfficialLayout("timm", "supervised", "timm ViT (supervised)", container="", parts=(("head.", "head."),))
    return METHOD_LAYOUTS.get(format, _ENCODER_ONLY)


def _route(state: dict[str, torch.Tensor],
           layout: OfficialLayout) -> tuple[dict[str, dict], dict[str, torch.Tensor], dict[str, int]]:
    """Official names -> ``({our encoder prefix: {backbone-relative name: tensor}}, {our name: tensor},
    {drop reason: count})``: the backbone tensors of each encoder, everything else (cls token, final
    norm, heads) renamed, and what the layout drops."""
    vits: dict[str, dict[str, torch.Tensor]] = {ours: {} for _, ours in layout.encoders}
    plain: dict[str, torch.Tensor] = {}
    dropped: dict[str, int] = {}
    parts = sorted(layout.parts, key=lambda p: -len(p[0]))  # base_encoder.head. before base_encoder.
    for key, value in state.items():
        drop = next((why for theirs, why in layout.drops if key.startswith(theirs)), None)
        if drop is not None:
            dropped[drop] = dropped.get(drop, 0) + 1
            continue
        part = next(((theirs, ours) for theirs, ours in parts if key.startswith(theirs)), None)
        if part is not None:
            plain[part[1] + key[len(part[0]):]] = value
            continue
        enc = next(((theirs, ours) for theirs, ours in layout.encoders if key.startswith(theirs)), None)
        if enc is None:
            plain[key] = value  # no place in this layout: reported unused below
            continue
        name = key[len(enc[0]):]
        if name == "cls_token" or name.startswith("norm."):
            plain[enc[1] + name] = value
        else:
            vits[enc[1]][name] = value
    return vits, plain, dropped


def _canonical_vit(sub: dict[str, torch.Tensor], format: str, meta: dict) -> CanonicalCheckpoint:
    """One encoder's ViT tensors in the detector's names (BEiT's ``gamma_N`` -> ``lsN.gamma``, index
    buffers dropped), labelled with the file's format so the report and expected misses follow it."""
    if format == "vitdet_bench":
        return CanonicalCheckpoint(dict(sub), format, meta=dict(meta))
    ckpt = to_canonical(sub, "auto")
    ckpt.format = format
    return ckpt


def _split_file(obj: Any, format: str) -> tuple[OfficialLayout, dict[str, dict], dict[str, torch.Tensor], dict,
                                                dict[str, int]]:
    """The file's layout, its backbone tensors per encoder, its other tensors (our names), its
    metadata and what the layout drops."""
    if format == "vitdet":  # a detector's ViT: no cls token, norm or heads to route
        ckpt = to_canonical(obj, format)
        return _ENCODER_ONLY, {"encoder.": ckpt.state}, {}, {}, {}
    layout = _layout_of(format)
    meta: dict = {}
    if format == "vitdet_bench":
        state, meta = obj["model"], dict(obj.get("meta") or {})
    else:
        state, _ = find_state_dict(obj)
    if layout.prefix and all(k.startswith(layout.prefix) for k in state):
        state = {k[len(layout.prefix):]: v for k, v in state.items()}
    elif all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    vits, plain, dropped = _route(state, layout)
    return layout, vits, plain, meta, dropped


def _fit_plain(key: str, value: torch.Tensor, own: dict[str, torch.Tensor], label: str, report: LoadReport,
               out: dict[str, torch.Tensor], restarted: set[str]) -> None:
    """Load one non-ViT tensor by name: as it is, a position table resized, or a classifier of
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


def _mismatch_message(model: nn.Module, source: str, format: str, layout: OfficialLayout, report: LoadReport,
                      file_arch: tuple[int, int] | None, file_method: str) -> str:
    """Why a strict load failed, naming the file, and what to do."""
    label = _label(model)
    file_label = _label(model, file_method) if file_method else layout.label
    missing = group_keys(report.missing_unexpected, limit=12)
    unused = group_keys([k for k, _ in report.unused], limit=12)
    lines = [f"{source}: this '{format}' checkpoint does not hold the whole {label} model "
             f"({len(report.missing_unexpected)} model tensors missing, {len(report.unused)} file tensors unused)."]
    _, vit = _backbone_of(model.encoder)
    if file_arch and file_arch != (vit.embed_dim, vit.depth):
        lines.append(f"The file's encoder is {file_arch[0]} wide with {file_arch[1]} blocks, the model's "
                     f"{vit.embed_dim} wide with {vit.depth}: set model.encoder's embed_dim / depth / num_heads "
                     "(or arch) to the file's.")
    elif file_method and file_method != model.method:
        lines.append(f"The file's method is {file_label}, the model's {label}: point train.init_checkpoint at a "
                     f"checkpoint of {label}, or set train.init_strict=False to take the tensors that fit (the "
                     "rest starts from its initial values).")
    elif format == "vitdet_bench":
        lines.append("A backbone export holds the encoder only; to continue a run of this project with its heads, "
                     "point train.init_checkpoint at the run's model_final.pth.")
    elif format == "mae" and any(k.startswith("decoder_") for k in report.missing_unexpected):
        lines.append("MAE's mae_pretrain_vit_*.pth releases hold the encoder only; mae_pretrain_vit_*_full.pth "
                     "and mae_visualize_vit_*.pth hold the decoder too.")
    if missing:
        lines.append(f"Missing: {', '.join(missing)}.")
    if unused:
        lines.append(f"Unused: {', '.join(unused)}.")
    lines.append("train.init_strict=False starts the missing tensors from their initial values and ignores the "
                 f"unused ones.\n{report.summary()}")
    return "\n".join(lines)


def fit_method_state(model: nn.Module, obj: Any, format: str, source: str, resize_patch_embed: bool = False,
                     rel_pos_resize: str = "cubic") -> tuple[dict[str, torch.Tensor], LoadReport, dict]:
    """Fit a whole method checkpoint to a pre-training ``model``; returns the state to load, the
    report and ``{"layout", "format", "file_arch", "file_method"}`` for messages."""
    model = unwrap_model(model)
    label = _label(model)
    kind, _ = _backbone_of(model.encoder)
    format = _resolve_method_format(obj, format, kind, label)
    layout, vits, plain, meta, dropped = _split_file(obj, format)
    own = model.state_dict()
    modules = dict(model.named_modules())
    report = LoadReport(source=source, format=format, kind="Init checkpoint", dropped=dict(dropped))
    out: dict[str, torch.Tensor] = {}
    covered: set[str] = set()  # model keys a backbone report has classified
    file_arch = None
    for ours, sub in vits.items():
        found = _backbone_of(modules.get(ours[:-1]))
        if not sub:
            continue
        if found is None:
            report.unused += [(ours + kind + "." + k, f"the {label} model has no {ours[:-1]}") for k in sub]
            continue
        name, backbone = found
        if isinstance(backbone, ConvViT):
            ckpt = CanonicalCheckpoint(dict(sub), format, meta=dict(meta))
            state, sub_report = adapt_to_convvit(ckpt, backbone, source)
        else:
            ckpt = _canonical_vit(sub, format, meta)
            state, sub_report = adapt_to_vit(ckpt, backbone, source, resize_patch_embed, rel_pos_resize)
        file_arch = file_arch or _arch(ckpt.state)
        prefix = f"{ours}{name}."
        report.origin = report.origin or sub_report.origin
        report.add(sub_report, prefix)
        out.update({prefix + k: v for k, v in state.items()})
        covered.update(prefix + k for k in backbone.state_dict())
    # A distilling MAE-Lite model started from a file without distillation: the adapter starts anew.
    no_adapter = layout.format == "maelite" and not any(_MAELITE_ADAPTER.match(k) for k in plain)
    if layout.format == "maelite":
        _maelite_adapter(plain, model, report)
    restarted: set[str] = set()
    for key, value in plain.items():
        _fit_plain(key, value, own, label, report, out, restarted)
    _copy_missing_ema(own, out, report)
    for k in own:
        if k in out or k in covered:
            continue
        expected = k in restarted or k.endswith("num_batches_tracked") or (no_adapter and k.startswith("attn_adapter."))
        (report.missing_expected if expected else report.missing_unexpected).append(k)
    file_method = meta.get("method", "") if format == "vitdet_bench" else layout.method
    return out, report, {"layout": layout, "format": format, "file_arch": file_arch, "file_method": file_method}


def _resolve_method_format(obj: Any, format: str, kind: str, label: str) -> str:
    """The format to read a whole-method file as, for a model whose encoder holds a ``kind``
    backbone ("vit" or "convvit"); a file of the other kind raises with what it is."""
    if kind == "convvit":
        detected = detect_convvit_format(obj)  # a plain ViT file raises: it has no convolution stages
        if format not in ("auto", detected):
            raise CheckpointFormatError(f"asked to read it as '{format}', but it is a '{detected}' file (the "
                                        f"{label} model's ConvViT reads 'convmae' files and 'vitdet_bench' exports)")
        return detected
    if format == "convmae" or has_convvit_names(obj):
        raise CheckpointFormatError(
            f"a ConvMAE checkpoint (a ConvViT: patch_embed1-4, blocks1-3), but the {label} model's encoder is a "
            "plain ViT: continue it with a ConvMAE / FastConvMAE config (projects/ConvMAE/configs, "
            "projects/FastConvMAE/configs)")
    return resolve_format(obj, format)


def _maelite_adapter(plain: dict[str, torch.Tensor], model: nn.Module, report: LoadReport) -> None:
    """MAE-Lite's ``attn_adapter.adapter{K}.weight`` (the adapter of 0-based block K) -> the model's
    ``attn_adapter.weight`` when the model distils that block; a model without a teacher drops it."""
    for key in [k for k in plain if _MAELITE_ADAPTER.match(k)]:
        block = int(_MAELITE_ADAPTER.match(key).group(1))
        value = plain.pop(key)
        if getattr(model, "attn_adapter", None) is None:
            why = "MAE-Lite's attention adapter (distillation; the model has no teacher)"
            report.dropped[why] = report.dropped.get(why, 0) + 1
            continue
        depth = len(model.encoder.vit.blocks)
        ours = getattr(model, "student_block", -1) % depth
        if block != ours:
            report.unused.append((key, f"MAE-Lite's adapter of block {block + 1} (distill_attn_idx); the model "
                                       f"distils block {ours + 1} of {depth} (model.student_block)"))
            continue
        plain["attn_adapter.weight"] = value
        report.converted.append(("attn_adapter.weight", f"from {key} (MAE-Lite's adapter of block {block + 1})"))


def load_method_checkpoint(model: nn.Module, obj: Any, format: str = "auto", source: str = "<in-memory checkpoint>",
                           strict: bool = True, resize_patch_embed: bool = False,
                           rel_pos_resize: str = "cubic") -> LoadReport:
    """Load a whole method checkpoint (see the module docstring) into a pre-training ``model``.

    Args:
        model: a pre-training model (:func:`is_method_model`), DDP-wrapped or not.
        obj: the loaded file (:func:`.io.read_checkpoint`).
        format: ``"auto"`` or one of :data:`.backbone.FORMATS` (checked against the file's names).
        source: the file's name, for the report and messages.
        strict: raise when a model tensor is missing that the file should have provided, or a file
            tensor has no place in the model (another method's parts, another width or depth).
        resize_patch_embed: resample patch-embed kernels of another patch size.
        rel_pos_resize: BEiT bias-table resizing, "cubic" (BEiT) or "linear" (timm).

    Returns:
        the :class:`LoadReport` (also logged). The model's ``init_source`` (when it has one) is set
        to :func:`describe_init_source` for the export's lineage.

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
        raise CheckpointError(_mismatch_message(unwrapped, source, info["format"], info["layout"], report,
                                                info["file_arch"], info["file_method"]))
    refuse_nonfinite(state, source)
    unwrapped.load_state_dict(state, strict=False)
    container = find_state_dict(obj)[1]
    ignored = [k for k in obj if k not in (container, "meta", "format", "version")] if container else []
    if ignored:
        logger.info("%s: not loaded (a continued run starts its own optimizer and schedule): %s", source,
                    ", ".join(ignored))
    if hasattr(unwrapped, "init_source"):
        unwrapped.init_source = describe_init_source(obj, info["format"], source)
    return report


def _plain(value: Any) -> Any:
    """JSON-like copy of a saved value (metadata must load with weights_only=True)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


_FORMAT_LABELS = {"vitdet_bench": "backbone export", "detector": "run checkpoint", "vitdet": "detector's ViT",
                  "timm": "timm ViT", "detectron2": "Detectron2 checkpoint"}


def describe_init_source(obj: Any, format: str, source: str) -> dict:
    """Where a run's weights started, as plain data for the export's metadata.

    The file and its format, plus what the file says of itself: the epoch, arch and args of an
    official training file; the metadata of this project's backbone export (whose own ``init``
    makes the lineage a chain); the iteration of this project's run checkpoint, and the
    ``init_source.json`` next to it when that run itself continued from a file (the chain again).
    """
    path = os.path.abspath(source) if os.path.isfile(source) else source
    layout = METHOD_LAYOUTS.get(format)
    info: dict[str, Any] = {"file": path, "format": format,
                            "kind": f"{layout.label} official layout" if layout else _FORMAT_LABELS.get(format, format)}
    if layout is not None:
        info["method"] = layout.method
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


# --- our model -> the official layout ------------------------------------------------------------

_PLAIN_VIT = re.compile(
    r"^(cls_token|pos_embed|patch_embed\.proj\.(weight|bias)|norm\.(weight|bias)"
    r"|blocks\.\d+\.(norm[12]\.(weight|bias)|attn\.(qkv|proj)\.(weight|bias)|mlp\.fc[12]\.(weight|bias)))$"
)
_BEIT_VIT = re.compile(
    r"^(cls_token|pos_embed|patch_embed\.proj\.(weight|bias)|norm\.(weight|bias)"
    r"|rel_pos_bias\.relative_position_(bias_table|index)"
    r"|blocks\.\d+\.(gamma_[12]|norm[12]\.(weight|bias)|attn\.(q_bias|v_bias|qkv\.weight|proj\.(weight|bias))"
    r"|mlp\.fc[12]\.(weight|bias)))$"
)
# models_convmae.MaskedAutoencoderConvViT's encoder: PatchEmbed (proj conv, norm) x 3, patch_embed4
# (Linear), CBlocks (norm1, conv1, depthwise attn, conv2, norm2, 1x1-conv mlp), timm 0.3.2 Blocks.
_CONVMAE_ENCODER = re.compile(
    r"^(pos_embed|norm\.(weight|bias)|patch_embed[123]\.(proj|norm)\.(weight|bias)|patch_embed4\.(weight|bias)"
    r"|blocks[12]\.\d+\.(norm[12]|conv[12]|attn|mlp\.fc[12])\.(weight|bias)"
    r"|blocks3\.\d+\.(norm[12]\.(weight|bias)|attn\.(qkv|proj)\.(weight|bias)|mlp\.fc[12]\.(weight|bias)))$"
)
# Per official encoder: the names it has, those it must have, and what it is (for messages).
_OFFICIAL_ENCODERS = {
    "plain": (_PLAIN_VIT, ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight"), "timm's ViT"),
    "beit": (_BEIT_VIT, ("cls_token", "patch_embed.proj.weight", "rel_pos_bias.relative_position_bias_table",
                         "norm.weight"), "timm's ViT with BEiT layer scale, q / v biases and a shared bias table"),
    "convmae": (_CONVMAE_ENCODER, ("patch_embed1.proj.weight", "patch_embed3.proj.weight", "patch_embed4.weight",
                                   "pos_embed", "norm.weight"),
                "ConvMAE's ConvViT: 3 conv patch embeddings, CBlocks, a Linear patch_embed4, plain ViT blocks, "
                "no relative position"),
}
# main_moco.py's --resume loads an optimizer and a GradScaler state: fresh ones (no moments), with
# the ViT recipe's AdamW settings (its lr is set every iteration; its weight decay is read from here).
_MOCO_ADAMW = {"lr": 0.0, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1, "amsgrad": False}
_FRESH_GRAD_SCALER = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                      "_growth_tracker": 0}
_MOCO_ARCHS = {(384, 12): "vit_small", (768, 12): "vit_base"}


def _encoder_to_official(enc: dict[str, torch.Tensor], format: str, source: str, where: str,
                         backbone: str = "vit") -> dict[str, torch.Tensor]:
    """One encoder (``cls_token``, ``norm.*``, ``vit.*`` / ``convvit.*`` relative to ``encoder.``) in
    the official names: BEiT's ``gamma_N`` and shared table (+ its index buffer) for ``beit``,
    ConvMAE's (ours) for ``convmae``, timm's otherwise."""
    out: dict[str, torch.Tensor] = {}
    for key, value in enc.items():
        name = key[len(backbone) + 1:] if key.startswith(backbone + ".") else key
        if format == "beit":
            name = re.sub(r"^(blocks\.\d+)\.ls([12])\.gamma$", r"\1.gamma_\2", name)
            name = name.replace("rel_pos_bias_global.", "rel_pos_bias.")
        out[name] = value
    beit = format == "beit"
    table = out.get("rel_pos_bias.relative_position_bias_table")
    if beit and table is not None:
        side = math.isqrt(table.shape[0] - NUM_CLS_ENTRIES)
        if side * side + NUM_CLS_ENTRIES != table.shape[0] or side % 2 == 0:
            raise CheckpointError(f"{source}: {where}'s bias table has {table.shape[0]} rows, not BEiT's "
                                  "(2W-1)^2 + 3 (its 3 cls rows): build the encoder with cls_token=True")
        window = (side + 1) // 2
        out["rel_pos_bias.relative_position_index"] = gen_relative_position_index((window, window))
    pattern, required, what = _OFFICIAL_ENCODERS[format if format in _OFFICIAL_ENCODERS else "plain"]
    strange = [k for k in out if not pattern.match(k)]
    if strange:
        raise CheckpointError(f"{source}: {where} has {', '.join(compress_keys(strange))}, which the official "
                              f"{format} model has no place for (its encoder: {what})")
    absent = [k for k in required if k not in out]
    if absent:
        raise CheckpointError(f"{source}: {where} has no {', '.join(absent)}, which the official {format} model has")
    return out


def to_official(state: dict[str, torch.Tensor], to: str, source: str = "<state dict>") -> dict[str, Any]:
    """A whole pre-training model's state dict (our names) -> the official repository's file.

    Args:
        state: the model's ``state_dict()`` (a run's ``model_*.pth`` ``"model"`` entry).
        to: a writable one of :data:`METHOD_LAYOUTS` (``mae``, ``beit``, ``mocov3``, ``deit``, ``convmae``).
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
        why = f" ({METHOD_LAYOUTS[to].label}'s resume: {METHOD_LAYOUTS[to].resume})" if to in METHOD_LAYOUTS else ""
        raise ValueError(f"official layout to write must be one of {WRITABLE_LAYOUTS}, got {to!r}{why}")
    layout = METHOD_LAYOUTS[to]
    used: set[str] = set()
    official: dict[str, torch.Tensor] = {}
    our_parts = sorted(((ours, theirs) for theirs, ours in layout.parts), key=lambda p: -len(p[0]))
    for theirs, ours in layout.encoders:
        # ConvMAE's fusion convs live in our encoder but are parts of the official model's top level.
        enc = {k[len(ours):]: v for k, v in state.items()
               if k.startswith(ours) and not any(k.startswith(p) for p, _ in our_parts)}
        if not enc:
            raise CheckpointError(f"{source}: no {ours}* tensors: not a whole {layout.label} model of this project "
                                  "(convert a pre-training run's model_final.pth)")
        used.update(ours + k for k in enc)
        converted = _encoder_to_official(enc, to, source, ours[:-1], layout.backbone)
        official.update({theirs + k: v for k, v in converted.items()})
    for ours, theirs in our_parts:
        keys = [k for k in state if k.startswith(ours)]
        if not keys:
            raise CheckpointError(f"{source}: no {ours}* tensors, which {layout.label}'s official model has: "
                                  f"not a {layout.label} run")
        used.update(keys)
        official.update({theirs + k[len(ours):]: state[k] for k in keys})
    extra = [k for k in state if k not in used]
    if extra:
        raise CheckpointError(f"{source}: {', '.join(compress_keys(extra)[:12])} have no place in "
                              f"{layout.label}'s official layout: not a {layout.label} run of this project")
    weights = {layout.prefix + k: v.detach().cpu().contiguous() for k, v in official.items()}
    if to != "mocov3":
        return {layout.container: weights}
    params = sum(1 for k in weights if not k.endswith(_BN_BUFFERS))
    width = state["encoder.vit.patch_embed.proj.weight"].shape[0]
    depth = len({k.split(".")[3] for k in state if k.startswith("encoder.vit.blocks.")})
    return {"epoch": 0, "arch": _MOCO_ARCHS.get((int(width), depth), f"vit (width {width}, depth {depth})"),
            "state_dict": weights,
            "optimizer": {"state": {}, "param_groups": [{**_MOCO_ADAMW, "params": list(range(params))}]},
            "scaler": dict(_FRESH_GRAD_SCALER)}
