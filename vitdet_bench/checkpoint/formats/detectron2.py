"""Detectron2 detector checkpoints <-> this project's detectors: names, class order, background slots.

Two formats: ``detectron2``, a whole detector (a model-zoo ``.pkl`` of numpy arrays
``{"model", "__author__", "matching_heuristics"}``, or a ``.pth`` ``{"model": ...}``), recognised by
Detectron2-only names (``proposal_generator.``, ``backbone.simfp_2`` ...) or the ``__author__``
entry; and ``vitdet``, the ViT inside a detector's file (Detectron2's or this project's, whose ViT
names agree), read as a pre-trained backbone: the neck and heads are dropped, BEiTDet's window
table renamed. Neither lacks a backbone tensor by design.

Detectron2 names a Mask R-CNN's tensors after its own modules (ViTDet's ``mask_rcnn_vitdet`` /
``cascade_mask_rcnn_vitdet`` configs; the benchmarking paper's ViT + FPN configs in
``projects_fb/MAE`` of ``ronghanghu/detectron2_vitdet``); this project builds the same network from
torchvision's parts. :func:`detectron2_names` derives the table from the model being loaded,
module by module, so a head with 2 or 4 convs, a single-scale FPN or a cascade of any length is
named correctly, and a module with no Detectron2 counterpart is an error, not a silent skip:

================================================  =================================================
this project                                       Detectron2
================================================  =================================================
``backbone.net.*`` (ViT)                           ``backbone.net.*`` (ViTDet's ``ViT``)
``backbone.stages.{i}.{j}[.0|.1]`` (simple pyr.)   ``backbone.simfp_{k}.{j}[.norm]`` (level ``p{k}``)
``backbone.bottom_up.net.*`` (ViT)                 ``backbone.bottom_up.net.*`` (BENCH's ``BEiTDet``)
``backbone.bottom_up.stages.{i}``                  ``backbone.bottom_up.stage_{i}`` (``ViTUp1``)
``backbone.fpn.inner_blocks.{i}`` / ``layer_``..   ``backbone.fpn_lateral{k}`` / ``fpn_output{k}``
``rpn.head.conv.{c}.0``                            ``proposal_generator.rpn_head.conv.conv{c}``
``rpn.head.cls_logits`` / ``bbox_pred``            ``...rpn_head.objectness_logits`` / ``anchor_deltas``
``roi_heads.box_head.{i}`` (conv / linear)         ``roi_heads.box_head.conv{c}`` / ``fc{f}``
``roi_heads.box_predictor.cls_score``              same name; background LAST there, FIRST here
``roi_heads.box_predictor.bbox_pred``              same name; 4K rows there, 4(K+1) here
``roi_heads.mask_head.{i}``                        ``roi_heads.mask_head.mask_fcn{i+1}``
``roi_heads.mask_predictor.conv5_mask``            ``roi_heads.mask_head.deconv``
``roi_heads.mask_predictor.mask_fcn_logits``       ``roi_heads.mask_head.predictor``; K there, K+1 here
``roi_heads.box_heads.{s}`` / ``box_predictors``   ``roi_heads.box_head.{s}`` / ``box_predictor.{s}``
================================================  =================================================

In the ViT the names agree with ViTDet's (``patch_embed.proj``, ``pos_embed``, ``blocks.N.attn.qkv``,
``rel_pos_h``); the BEiT options use BENCH's ``BEiTDet`` names (``gamma_1`` for layer scale,
``rel_pos_bias`` / ``rel_pos_bias_global`` tables with BEiT's 3 cls rows, one fused qkv bias).

Class layout: torchvision puts the background class first and keeps a (never used) background
slot in the per-class box deltas and mask logits; Detectron2 puts the background score last and
has no background slot. Converting to Detectron2 drops the slots; converting back fills them with
zeros, which no loss or inference reads.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import torch
import torch.nn as nn
from timm.models.beit import gen_relative_position_index
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops.misc import Conv2dNormActivation

from ...modeling.backbone.pyramid import FPN, MultiScaleAdapter, SimpleFeaturePyramid
from ...modeling.backbone.rel_pos import NUM_CLS_ENTRIES, RelativePositionBias, split_cls_entries
from ...modeling.backbone.vit import ViT
from ...modeling.detector.roi_heads import CascadeRoIHeads
from ...utils.comm import unwrap_model
from ..io import CheckpointError, atomic_pickle_dump, atomic_torch_save
from ..report import LoadReport
from ..target import find_vit
from .base import (
    CanonicalCheckpoint,
    CheckpointFormat,
    CheckpointFormatError,
    DetectorCheckpointFormat,
    MethodFile,
    Probe,
    find_state_dict,
)
from .registry import register_format, to_canonical

__all__ = [
    "DETECTRON2_AUTHOR",
    "Detectron2Format",
    "VitDetFormat",
    "detectron2_names",
    "from_detectron2",
    "is_detectron2_checkpoint",
    "num_classes_in",
    "save_detectron2_checkpoint",
    "to_detectron2",
]

DETECTRON2_AUTHOR = "vitdet_bench"

# Keys only Detectron2's layout has (ours never produce them).
_DETECTRON2_ONLY = re.compile(
    r"^(proposal_generator\.|backbone\.(simfp_\d|fpn_(lateral|output)\d|bottom_up\.stage_\d)"
    r"|roi_heads\.(box_head\.(\d+\.)?(conv|fc)\d|mask_head\.(mask_fcn\d|deconv\.|predictor\.)))"
)
# Detectron2 tensors outside the ViT with no counterpart here, on purpose (the ViT's own are the
# backbone converter's rules: cls token, relative_position_index).
_DROP_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"(^|\.)pixel_(mean|std)$"), "input normalisation (model.pixel_mean / pixel_std here)"),
    (re.compile(r"anchor_generator\.cell_anchors"), "cell anchors (recomputed)"),
]

# Class-layout conversions, by kind: (to Detectron2, from Detectron2, what the report says).
_SCORES, _BOXES, _MASKS = "scores", "boxes", "masks"


def _pad_first(t: torch.Tensor, rows: int) -> torch.Tensor:
    return torch.cat((t.new_zeros((rows,) + tuple(t.shape[1:])), t))


_LAYOUTS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor], str]] = {
    _SCORES: (lambda t: torch.cat((t[1:], t[:1])), lambda t: torch.cat((t[-1:], t[:-1])),
              "class scores: background moved from last (Detectron2) to first"),
    _BOXES: (lambda t: t[4:], lambda t: _pad_first(t, 4),
             "per-class box deltas: zero background slot (never used) added first"),
    _MASKS: (lambda t: t[1:], lambda t: _pad_first(t, 1),
             "per-class mask logits: zero background channel (never used) added first"),
}


def is_detectron2_checkpoint(obj: Any) -> bool:
    """A model-zoo ``.pkl`` (``{"model", "__author__"}``) or a state dict with Detectron2-only names
    (``proposal_generator.``, ``backbone.simfp_2``, ``roi_heads.box_head.conv1`` ...)."""
    if isinstance(obj, dict) and "__author__" in obj and isinstance(obj.get("model"), dict):
        return True
    state, _ = find_state_dict(obj)
    return state is not None and any(_DETECTRON2_ONLY.match(k) for k in state)


def num_classes_in(state: dict[str, torch.Tensor]) -> int | None:
    """The number of object classes a detector state dict (either layout) was trained for."""
    for key in ("roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.0.cls_score.weight",
                "roi_heads.box_predictors.0.cls_score.weight"):
        if key in state:
            return int(state[key].shape[0]) - 1
    return None


# "vitdet": the ViT inside a whole detector's checkpoint, in Detectron2's names (ViTDet's ViT, the
# benchmarking paper's BEiTDet) or this project's, which agree there.
_DETECTOR_VIT = re.compile(r"^(backbone\.(?:bottom_up\.)?net\.)blocks\.\d+\.")


def _detector_vit(state: dict[str, torch.Tensor], out: CanonicalCheckpoint) -> dict[str, torch.Tensor]:
    """The ViT of a detector checkpoint, prefix removed; BEiTDet's window table ``rel_pos_bias``
    renamed to ours (its global one already has our name); neck and heads counted as dropped."""
    prefixes = {m.group(1) for k in state if (m := _DETECTOR_VIT.match(k))}
    if len(prefixes) != 1:
        raise CheckpointFormatError(f"expected one ViT under backbone.net. or backbone.bottom_up.net., found "
                                    f"{prefixes}")
    prefix = prefixes.pop()
    kept = {}
    for k, v in state.items():
        if not k.startswith(prefix):
            out.dropped["detector neck and heads (not the backbone)"] += 1
            continue
        name = k[len(prefix):]
        if name.startswith("rel_pos_bias."):
            name = "rel_pos_bias_window." + name[len("rel_pos_bias."):]
            out.renamed.append((k, name))
        kept[name] = v
    return kept


@register_format
class VitDetFormat(CheckpointFormat):
    """The ViT of a whole detector's checkpoint (Detectron2's or this project's), as a backbone."""

    name = "vitdet"
    label = "detector's ViT"
    detect_order = 60

    def recognizes(self, probe: Probe) -> bool:
        return not probe.has_vit_blocks and any(_DETECTOR_VIT.match(k) for k in probe.keys)

    def backbone_state(self, state: dict[str, torch.Tensor], out: CanonicalCheckpoint) -> dict[str, torch.Tensor]:
        return _detector_vit(state, out)

    def split_method_file(self, obj: Any) -> MethodFile:
        """The ViT only (no cls token, norm or heads to route): the encoder of a pre-training model."""
        return MethodFile({"encoder.": self.canonical(obj).state}, {}, {}, {})


@register_format
class Detectron2Format(DetectorCheckpointFormat):
    """A whole Detectron2 detector (model-zoo ``.pkl`` or ``.pth``)."""

    name = "detectron2"
    label = "Detectron2 checkpoint"
    detect_order = 10

    def recognizes(self, probe: Probe) -> bool:
        return is_detectron2_checkpoint(probe.obj)

    def detector_state(self, state: dict[str, torch.Tensor], model: nn.Module,
                       source: str) -> tuple[dict[str, torch.Tensor], CanonicalCheckpoint | None, LoadReport]:
        return from_detectron2(state, model, source)

    def file_names(self, keys: list[str], model: nn.Module) -> tuple[list[str], str]:
        theirs = detectron2_names(model)[0]
        return [theirs.get(k, k) for k in keys], " (Detectron2's names)"


class _Names:
    """Accumulates ``ours -> theirs`` key pairs (and class layouts) for one model."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.layouts: dict[str, str] = {}

    def same(self, module: nn.Module, ours: str, theirs: str, layout: str | None = None) -> None:
        """Every tensor of ``module`` under the same leaf names."""
        for k in module.state_dict():
            self.names[ours + k] = theirs + k
            if layout:
                self.layouts[ours + k] = layout

    def conv(self, block: nn.Module, ours: str, theirs: str) -> None:
        """torchvision's ``Conv2dNormActivation`` (conv, norm, act) -> Detectron2's ``Conv2d`` with ``.norm``."""
        if not isinstance(block, Conv2dNormActivation):
            raise CheckpointError(f"{ours}: expected a conv block, found {type(block).__name__}")
        for k in block.state_dict():
            index, leaf = k.split(".", 1)
            self.names[ours + k] = theirs + ("norm." if index == "1" else "") + leaf


def _backbone_names(backbone: nn.Module, n: _Names) -> None:
    if isinstance(backbone, SimpleFeaturePyramid):
        for i, (stage, level) in enumerate(zip(backbone.stages, backbone.level_names)):
            for j, layer in enumerate(stage):
                ours, theirs = f"backbone.stages.{i}.{j}.", f"backbone.simfp_{level[1:]}.{j}."
                if isinstance(layer, Conv2dNormActivation):
                    n.conv(layer, ours, theirs)
                else:
                    n.same(layer, ours, theirs)
        return
    if isinstance(backbone, FPN) and isinstance(backbone.bottom_up, MultiScaleAdapter):
        for i, stage in enumerate(backbone.bottom_up.stages):
            ours, theirs = f"backbone.bottom_up.stages.{i}.", f"backbone.bottom_up.stage_{i}."
            # ViTUp1 wraps even a lone deconv in a Sequential.
            n.same(stage, ours, theirs if isinstance(stage, nn.Sequential) else theirs + "0.")
        for i, level in enumerate(backbone.level_names):
            n.conv(backbone.fpn.inner_blocks[i], f"backbone.fpn.inner_blocks.{i}.", f"backbone.fpn_lateral{level[1:]}.")
            n.conv(backbone.fpn.layer_blocks[i], f"backbone.fpn.layer_blocks.{i}.", f"backbone.fpn_output{level[1:]}.")
        return
    raise CheckpointError(
        f"no Detectron2 layout for a {type(backbone).__name__} backbone (known: SimpleFeaturePyramid, "
        "FPN over MultiScaleAdapter)"
    )


def _rpn_names(head: nn.Module, n: _Names) -> None:
    if not isinstance(head, RPNHead):
        raise CheckpointError(f"no Detectron2 layout for an RPN head of type {type(head).__name__}")
    theirs = "proposal_generator.rpn_head."
    convs = list(head.conv)
    for c, block in enumerate(convs):
        # StandardRPNHead keeps its old name "conv" when it has a single conv.
        n.conv(block, f"rpn.head.conv.{c}.", theirs + ("conv." if len(convs) == 1 else f"conv.conv{c}."))
    n.same(head.cls_logits, "rpn.head.cls_logits.", theirs + "objectness_logits.")
    n.same(head.bbox_pred, "rpn.head.bbox_pred.", theirs + "anchor_deltas.")


def _box_names(head: nn.Module, predictor: nn.Module, ours: tuple[str, str], theirs: tuple[str, str],
               n: _Names) -> None:
    if not isinstance(head, FastRCNNConvFCHead) or not isinstance(predictor, FastRCNNPredictor):
        raise CheckpointError(f"no Detectron2 layout for box head {type(head).__name__} / "
                              f"predictor {type(predictor).__name__}")
    convs = fcs = 0
    for i, layer in enumerate(head):
        if isinstance(layer, Conv2dNormActivation):
            convs += 1
            n.conv(layer, f"{ours[0]}{i}.", f"{theirs[0]}conv{convs}.")
        elif isinstance(layer, nn.Linear):
            fcs += 1
            n.same(layer, f"{ours[0]}{i}.", f"{theirs[0]}fc{fcs}.")
    n.same(predictor.cls_score, f"{ours[1]}cls_score.", f"{theirs[1]}cls_score.", _SCORES)
    agnostic = predictor.bbox_pred.out_features == 4
    n.same(predictor.bbox_pred, f"{ours[1]}bbox_pred.", f"{theirs[1]}bbox_pred.", None if agnostic else _BOXES)


def _roi_heads_names(heads: nn.Module, n: _Names) -> None:
    if isinstance(heads, CascadeRoIHeads):
        for s, (head, predictor) in enumerate(zip(heads.box_heads, heads.box_predictors)):
            _box_names(head, predictor, (f"roi_heads.box_heads.{s}.", f"roi_heads.box_predictors.{s}."),
                       (f"roi_heads.box_head.{s}.", f"roi_heads.box_predictor.{s}."), n)
    else:
        _box_names(heads.box_head, heads.box_predictor, ("roi_heads.box_head.", "roi_heads.box_predictor."),
                   ("roi_heads.box_head.", "roi_heads.box_predictor."), n)
    if heads.mask_head is None:
        return
    if not isinstance(heads.mask_head, MaskRCNNHeads) or not isinstance(heads.mask_predictor, MaskRCNNPredictor):
        raise CheckpointError(f"no Detectron2 layout for mask head {type(heads.mask_head).__name__} / "
                              f"predictor {type(heads.mask_predictor).__name__}")
    for i, block in enumerate(heads.mask_head):
        n.conv(block, f"roi_heads.mask_head.{i}.", f"roi_heads.mask_head.mask_fcn{i + 1}.")
    n.same(heads.mask_predictor.conv5_mask, "roi_heads.mask_predictor.conv5_mask.", "roi_heads.mask_head.deconv.")
    n.same(heads.mask_predictor.mask_fcn_logits, "roi_heads.mask_predictor.mask_fcn_logits.",
           "roi_heads.mask_head.predictor.", _MASKS)


def detectron2_names(model: nn.Module) -> tuple[dict[str, str], dict[str, str], str]:
    """Detectron2's name for every tensor of ``model`` outside its ViT.

    Args:
        model: a :class:`~vitdet_bench.modeling.MaskRCNN` (DDP-wrapped or not).

    Returns:
        ``(names, layouts, vit_prefix)``: our key -> Detectron2's key; our key -> class-layout kind
        for the predictor tensors; the ViT's prefix (identical in both layouts).

    Raises:
        CheckpointError: a module of the model has no Detectron2 counterpart (named).
    """
    model = unwrap_model(model)
    _, prefix = find_vit(model)
    n = _Names()
    _backbone_names(model.backbone, n)
    _rpn_names(model.rpn.head, n)
    _roi_heads_names(model.roi_heads, n)
    uncovered = [k for k in model.state_dict() if not k.startswith(prefix) and k not in n.names]
    if uncovered:
        raise CheckpointError(f"no Detectron2 name for {len(uncovered)} tensors of the model: {uncovered[:8]}")
    return n.names, n.layouts, prefix


_GAMMA_OURS = re.compile(r"^(blocks\.\d+)\.ls([12])\.gamma$")
_QV_BIAS = re.compile(r"^(blocks\.\d+\.attn)\.q_bias$")


def _vit_to_detectron2(state: dict[str, torch.Tensor], vit: ViT) -> dict[str, torch.Tensor]:
    """Our ViT names -> ViTDet's (BENCH's ``BEiTDet`` names for the BEiT options, whose bias
    tables carry 3 cls rows and a persistent index buffer, both written here)."""
    out = {}
    for k, v in state.items():
        if m := _GAMMA_OURS.match(k):
            out[f"{m.group(1)}.gamma_{m.group(2)}"] = v
        elif m := _QV_BIAS.match(k):
            q, v_bias = v, state[f"{m.group(1)}.v_bias"]
            out[f"{m.group(1)}.qkv.bias"] = torch.cat((q, torch.zeros_like(q), v_bias))
        elif k.endswith("attn.v_bias"):
            continue  # fused with q_bias above
        elif k.endswith("relative_position_bias_table"):
            name = k.replace("rel_pos_bias_window.", "rel_pos_bias.")
            owner = vit.get_submodule(k.rsplit(".", 1)[0])
            window = tuple(owner.window_size if isinstance(owner, RelativePositionBias) else owner.rel_pos_table_window)
            offsets, cls_rows = split_cls_entries(v, window)
            # BEiTDet's tables carry BEiT's cls rows (unused without a cls token): zeros when ours has none.
            if cls_rows is None:
                cls_rows = v.new_zeros(NUM_CLS_ENTRIES, v.shape[1])
            out[name] = torch.cat((offsets, cls_rows))
            out[name.replace("relative_position_bias_table", "relative_position_index")] = (
                gen_relative_position_index(window))
        else:
            out[k] = v
    return out


def from_detectron2(d2_state: dict[str, torch.Tensor], model: nn.Module,
                    source: str = "<state dict>") -> tuple[dict[str, torch.Tensor], CanonicalCheckpoint, LoadReport]:
    """Rename a Detectron2 detector state dict to ``model``'s names.

    Shapes are not checked here (:func:`vitdet_bench.checkpoint.load_init_checkpoint` does, with
    the ViT part going through :func:`~vitdet_bench.checkpoint.adapt.adapt_to_vit`).

    Returns:
        ``(state, vit, report)``: the non-ViT tensors in our names (class layouts converted), the
        ViT tensors in the canonical ViT names, and a report holding the conversions, the
        dropped tensors and the Detectron2 tensors with no counterpart in ``model``.
    """
    names, layouts, prefix = detectron2_names(model)
    inverse = {theirs: ours for ours, theirs in names.items()}
    report = LoadReport(source=source, format="detectron2", kind="Init checkpoint")
    out: dict[str, torch.Tensor] = {}
    # The ViT's names are ViTDet's / BEiTDet's: the backbone converter's "vitdet" format reads them.
    vit_part = {k: v for k, v in d2_state.items() if k.startswith(prefix)}
    vit = to_canonical(vit_part, "vitdet") if vit_part else CanonicalCheckpoint({}, "detectron2")
    for k, v in d2_state.items():
        if k.startswith(prefix):
            continue
        reason = next((why for pattern, why in _DROP_RULES if pattern.search(k)), None)
        if reason:
            report.dropped[reason] = report.dropped.get(reason, 0) + 1
            continue
        ours = inverse.get(k)
        if ours is None:
            report.unused.append((k, "no counterpart in this model"))
            continue
        layout = layouts.get(ours)
        out[ours] = _LAYOUTS[layout][1](v) if layout else v
        if layout:
            report.converted.append((ours, _LAYOUTS[layout][2]))
    vit.format = "detectron2"
    return out, vit, report


def to_detectron2(model: nn.Module, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """A detector's weights in Detectron2's names and class layout.

    Args:
        model: the detector (its structure decides the names).
        state: its weights in our names (default: ``model.state_dict()``); must hold exactly the
            model's keys.

    Returns:
        the state dict a Detectron2 model of the same config loads with nothing missing.
    """
    model = unwrap_model(model)
    state = model.state_dict() if state is None else state
    names, layouts, prefix = detectron2_names(model)
    own = set(model.state_dict())
    missing, extra = sorted(own - set(state)), sorted(set(state) - own)
    if missing or extra:
        raise CheckpointError(f"the weights do not match the model: missing {missing[:8]}, unexpected {extra[:8]}")
    vit, _ = find_vit(model)
    out = {prefix + k: v for k, v in _vit_to_detectron2(
        {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, vit).items()}
    for k, v in state.items():
        if not k.startswith(prefix):
            layout = layouts.get(k)
            out[names[k]] = _LAYOUTS[layout][0](v) if layout else v
    return {k: v.detach().cpu().contiguous() for k, v in out.items()}


def save_detectron2_checkpoint(state: dict[str, torch.Tensor], path: str) -> str:
    """Write a Detectron2 checkpoint: a model-zoo ``.pkl`` of numpy arrays
    (``{"model", "__author__", "matching_heuristics": False}``) when ``path`` ends in ``.pkl``,
    else a ``torch.save`` file ``{"model": state}``. Both load in Detectron2's
    ``DetectionCheckpointer`` by exact names."""
    if path.endswith(".pkl"):
        arrays = {k: v.detach().cpu().numpy() for k, v in state.items()}
        atomic_pickle_dump({"model": arrays, "__author__": DETECTRON2_AUTHOR, "matching_heuristics": False}, path)
    else:
        atomic_torch_save({"model": {k: v.detach().cpu() for k, v in state.items()}}, path)
    return path
