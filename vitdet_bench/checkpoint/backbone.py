"""Load pre-trained ViT checkpoints (MAE, MoCo v3, BEiT, DeiT, timm, MAE-Lite, our exports) into the backbone.

Two steps, each with one job:

1. :func:`to_canonical` reads a checkpoint's container and names (``{"model": ...}``,
   ``{"state_dict": {"module.base_encoder.…"}}``, MAE-Lite's ``{"model": {"module.model.…"}}``, a flat
   timm dict, BEiT's ``gamma_1`` …) and returns
   a state dict in the detection ViT's names, independent of any model. Keys a format carries but
   a detection backbone never uses (cls token, final norm, heads, MAE decoder, MoCo projector /
   predictor / momentum encoder, BEiT ``lm_head``, MAE-Lite's distillation teacher and adapter) are
   dropped here and counted by reason.
   ``tools/convert_checkpoint.py`` writes this canonical form as a file.
2. :func:`adapt_to_vit` fits the canonical weights to one :class:`~vitdet_bench.modeling.ViT`:
   position tables resized (bicubic), BEiT bias tables' 3 cls rows kept where the model's table
   has them (pre-training) and dropped, with a report line, where it has none (the detector), shared tables
   expanded or kept shared and resized with BEiT's geometric interpolation, layer scale folded
   into the projections when the model has none, q/v biases fused into (or split from) one qkv
   bias, patch-embed kernels resampled (14 -> 16) when asked.

Every load returns a :class:`LoadReport` (and logs it): loaded, resized (from -> to), converted,
missing keys split into those the format is known not to have (e.g. relative position for MAE)
and those it should have had, and checkpoint keys the model did not take.

Files are read with :func:`.io.read_checkpoint` (``torch.load(weights_only=True)``; the
``argparse.Namespace`` that MAE, DeiT and BEiT training scripts store under ``"args"`` is
allow-listed rather than unpickled freely). Whole-detector checkpoints are read by
:mod:`.init`, which passes their backbone part through :func:`adapt_to_vit` as well.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from ..modeling.backbone.rel_pos import NUM_CLS_ENTRIES, resize_rel_pos_table
from ..modeling.backbone.vit import ViT
from ..utils.comm import unwrap_model
from .io import CheckpointError, atomic_torch_save, read_checkpoint
from .report import LoadReport

__all__ = [
    "DETECTOR_FORMATS",
    "FORMATS",
    "EXPORT_TAG",
    "CanonicalCheckpoint",
    "CheckpointFormatError",
    "adapt_to_vit",
    "detect_format",
    "find_state_dict",
    "find_vit",
    "fit_pos_embed",
    "load_backbone_checkpoint",
    "resolve_format",
    "save_backbone_export",
    "to_canonical",
]

logger = logging.getLogger(__name__)

FORMATS = ("mae", "beit", "mocov3", "deit", "timm", "maelite", "vitdet_bench", "vitdet")
# Whole-detector checkpoints (Detectron2's, this project's own): their backbone part goes through
# adapt_to_vit too (position tables resized to the model), and nothing is missing by design.
DETECTOR_FORMATS = ("detectron2", "detector")
EXPORT_TAG = "vitdet_bench.vit_backbone"
EXPORT_VERSION = 1

# Keys that a format carries and a detection backbone never uses, with the reason shown in reports.
_DROP_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^cls_token$"), "cls token (the detector has none)"),
    (re.compile(r"^dist_token$"), "distillation token"),
    (re.compile(r"^(norm|fc_norm)\."), "final norm (the detector taps blocks before it)"),
    (re.compile(r"^(head|head_dist)\."), "classification head"),
    (re.compile(r"^mask_token$"), "mask token (pre-training only)"),
    (re.compile(r"^decoder_|^decoder\."), "MAE decoder"),
    (re.compile(r"^lm_head\."), "BEiT visual-token head"),
    (re.compile(r"relative_position_index$"), "rel-pos index buffer (recomputed)"),
]
_MOCO_PREFIX = "module.base_encoder."
# MAE-Lite (wangsr126/mae-lite tools/train.py) saves DDP(MAE(exp, model)).state_dict(): the MAE model
# under "model." ("module.model." from DDP); its distillation wrapper adds these, dropped here.
_MAELITE_MODEL = "model."
_MAELITE_DROPS = (("tch_model.", "MAE-Lite's frozen distillation teacher (tch_model)"),
                  ("attn_adapter.", "MAE-Lite's attention adapter (distillation)"))
# "vitdet": the ViT inside a whole detector's checkpoint, in Detectron2's names (ViTDet's ViT, the
# benchmarking paper's BEiTDet) or this project's, which agree there.
_DETECTOR_VIT = re.compile(r"^(backbone\.(?:bottom_up\.)?net\.)blocks\.\d+\.")


class CheckpointFormatError(CheckpointError):
    """A file whose contents match no known checkpoint format (or not the one asked for)."""


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _describe(obj: Any) -> str:
    if not isinstance(obj, dict):
        return f"a {type(obj).__name__}"
    parts = []
    for k, v in list(obj.items())[:12]:
        if isinstance(v, torch.Tensor):
            parts.append(f"{k}: tensor{tuple(v.shape)}")
        elif isinstance(v, dict):
            sub = list(v)[:4]
            parts.append(f"{k}: dict with {len(v)} entries (e.g. {sub})")
        else:
            parts.append(f"{k}: {type(v).__name__}")
    more = f", … ({len(obj)} entries)" if len(obj) > 12 else ""
    return "{" + ", ".join(parts) + more + "}"


def find_state_dict(obj: Any) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The state dict inside a loaded checkpoint and the container key it came from ("" when flat;
    ``"model"``, ``"module"`` or ``"state_dict"`` otherwise), or ``(None, "")``."""
    if _is_state_dict(obj):
        return obj, ""
    if isinstance(obj, dict):
        for key in ("model", "module", "state_dict"):
            if _is_state_dict(obj.get(key)):
                return obj[key], key
    return None, ""


def detect_format(obj: Any) -> str:
    """Best guess of a loaded checkpoint's format, one of :data:`FORMATS`.

    MAE's encoder-only release, DeiT and timm share key names; the container tells them apart
    (MAE and DeiT wrap in ``"model"``, DeiT keeps its classifier, timm files are flat). The guess
    only changes which misses count as expected; pass ``format=`` to be explicit.
    """
    if isinstance(obj, dict) and obj.get("format") == EXPORT_TAG:
        return "vitdet_bench"
    state, container = find_state_dict(obj)
    if state is None:
        raise CheckpointFormatError(f"no state dict found: the file holds {_describe(obj)}")
    keys = list(state)
    if any(k.startswith(_MOCO_PREFIX) for k in keys):
        return "mocov3"
    if any(k.startswith("module.") for k in keys) and all(k.startswith("module.") for k in keys):
        keys = [k[len("module."):] for k in keys]
    if any(k.startswith(_MAELITE_MODEL + "blocks.") for k in keys):
        return "maelite"
    if not any(k.startswith("blocks.") for k in keys):
        if any(_DETECTOR_VIT.match(k) for k in keys):
            return "vitdet"
        raise CheckpointFormatError(
            "the state dict has no ViT blocks ('blocks.N.*'), so it matches none of "
            f"{FORMATS}: found {_describe(state)}"
        )
    if any(k.endswith(("attn.q_bias", "gamma_1")) or k.startswith("rel_pos_bias.") for k in keys):
        return "beit"
    if any(k.startswith("decoder_") or k == "mask_token" for k in keys):
        return "mae"
    if "fc_norm.weight" in keys:  # MAE fine-tuned with global pooling
        return "mae"
    if container in ("model", "module"):
        return "deit" if "head.weight" in keys else "mae"
    return "timm"


def resolve_format(obj: Any, format: str = "auto") -> str:
    """The format to read a loaded checkpoint as: the detected one for ``"auto"``, else ``format``
    when it agrees with the file's names (MAE, DeiT and timm share names, so any of the three may
    read the others' files; MoCo v3, BEiT and the project's own formats may not)."""
    if format not in ("auto",) + FORMATS:
        raise ValueError(f"format must be 'auto' or one of {FORMATS}, got {format!r}")
    detected = detect_format(obj)
    if format == "auto":
        return detected
    distinct = ("mocov3", "beit", "maelite", "vitdet_bench", "vitdet")  # MAE, DeiT and timm share names; these do not
    if format != detected and (format in distinct or detected in distinct):
        raise CheckpointFormatError(
            f"asked to read it as '{format}', but the detected format is '{detected}' "
            f"(keys: {_describe(find_state_dict(obj)[0] or obj)})"
        )
    return format


@dataclass
class CanonicalCheckpoint:
    """Backbone weights in the detection ViT's names, plus what was dropped and renamed.

    ``extras`` keeps the tensors the drop rules removed (cls token, final norm, heads, …), under
    their names after prefix stripping: a detector ignores them, a frozen teacher needs some."""

    state: dict[str, torch.Tensor]
    format: str
    dropped: Counter = field(default_factory=Counter)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def _detector_vit(state: dict[str, torch.Tensor], out: CanonicalCheckpoint) -> dict[str, torch.Tensor]:
    """The ViT of a detector checkpoint, prefix removed; BEiTDet's window table ``rel_pos_bias``
    renamed to ours (its global one already has our name); neck and heads counted as dropped."""
    prefixes = {m.group(1) for k in state if (m := _DETECTOR_VIT.match(k))}
    if len(prefixes) != 1:
        raise CheckpointFormatError(f"expected one ViT under backbone.net. or backbone.bottom_up.net., found {prefixes}")
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


def _maelite_student(state: dict[str, torch.Tensor], out: CanonicalCheckpoint) -> dict[str, torch.Tensor]:
    """MAE-Lite's trained MAE (``model.*``, DDP prefix removed) in MAE's names; the distillation
    teacher and adapter counted as dropped; anything else kept under its name (reported unused)."""
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    kept = {}
    for k, v in state.items():
        if k.startswith(_MAELITE_MODEL):
            kept[k[len(_MAELITE_MODEL):]] = v
            continue
        reason = next((why for prefix, why in _MAELITE_DROPS if k.startswith(prefix)), None)
        if reason is None:
            kept[k] = v
        else:
            out.dropped[reason] += 1
    return kept


def _split_cls_rows(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(offset rows, BEiT's 3 cls rows or None)`` of a square window's bias table."""
    rows = table.shape[0]
    side = math.isqrt(rows - NUM_CLS_ENTRIES) if rows > NUM_CLS_ENTRIES else 0
    if side * side == rows - NUM_CLS_ENTRIES and side % 2 == 1 and math.isqrt(rows) ** 2 != rows:
        return table[:-NUM_CLS_ENTRIES], table[-NUM_CLS_ENTRIES:]
    return table, None


def _drop_reason(key: str) -> str | None:
    return next((why for pattern, why in _DROP_RULES if pattern.search(key)), None)


def to_canonical(obj: Any, format: str = "auto") -> CanonicalCheckpoint:
    """Convert a loaded checkpoint to the detection ViT's key names (see the module docstring)."""
    format = resolve_format(obj, format)
    if format == "vitdet_bench":
        if not (isinstance(obj, dict) and obj.get("format") == EXPORT_TAG):
            raise CheckpointFormatError(f"not a vitdet_bench backbone export (no format tag): {_describe(obj)}")
        out = CanonicalCheckpoint({}, format, meta=dict(obj.get("meta", {})))
        for k, v in obj["model"].items():
            reason = _drop_reason(k)  # exports carry the encoder's cls token and final norm
            if reason is not None:
                out.dropped[reason] += 1
                out.extras[k] = v
            else:
                out.state[k] = v
        return out
    state, _ = find_state_dict(obj)
    out = CanonicalCheckpoint({}, format)
    if format == "mocov3":
        kept = {}
        for k, v in state.items():
            if k.startswith(_MOCO_PREFIX + "head."):
                out.dropped["MoCo v3 projector"] += 1
            elif k.startswith(_MOCO_PREFIX):
                kept[k[len(_MOCO_PREFIX):]] = v
            elif k.startswith("module.momentum_encoder."):
                out.dropped["MoCo v3 momentum encoder"] += 1
            elif k.startswith("module.predictor."):
                out.dropped["MoCo v3 predictor"] += 1
            else:
                kept[k] = v
        state = kept
    elif format == "vitdet":
        state = _detector_vit(state, out)
    elif format == "maelite":
        state = _maelite_student(state, out)
    elif all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    for k, v in state.items():
        reason = _drop_reason(k)
        if reason is not None:
            out.dropped[reason] += 1
            out.extras[k] = v
            continue
        name = k
        # BEiT's layer scale is timm's LayerScale: gamma_1 -> ls1.gamma.
        m = re.match(r"^(blocks\.\d+)\.gamma_([12])$", k)
        if m:
            name = f"{m.group(1)}.ls{m.group(2)}.gamma"
            out.renamed.append((k, name))
        out.state[name] = v  # bias tables keep BEiT's cls rows: adapt_to_vit decides per model
    if "pos_embed" in out.state:
        n = out.state["pos_embed"].shape[1]
        out.meta["pos_embed_has_cls"] = math.isqrt(n) ** 2 != n
    return out


def find_vit(model: nn.Module) -> tuple[ViT, str]:
    """The :class:`ViT` inside ``model`` (or ``model`` itself) and its dotted prefix."""
    for name, module in unwrap_model(model).named_modules():
        if isinstance(module, ViT):
            return module, (name + "." if name else "")
    raise CheckpointError(f"{type(model).__name__} contains no vitdet_bench ViT to load a backbone checkpoint into")


def _expected_missing(key: str, format: str) -> bool:
    """Keys a format is known not to provide: they keep their initialisation, by design."""
    if format in DETECTOR_FORMATS:
        return False  # a whole detector's checkpoint carries every backbone tensor
    if key.endswith(("rel_pos_h", "rel_pos_w")):
        return True  # decomposed rel-pos is fine-tuning only (ViTDet); zero-initialised
    if key.endswith("relative_position_bias_table"):
        return format != "beit"  # BENCH: zero-init bias tables for every non-BEiT init
    if key == "pos_embed":
        return format == "beit"  # BEiT trains without absolute positions; BENCH random-inits them
    return False


# Our exports say which method (or which converted format) produced them; that decides which
# keys they lack by design (a BEiT export has no pos_embed, an MAE export no bias tables).
_METHOD_FORMATS = {"mae": "mae", "mocov3": "mocov3", "beit": "beit", "supervised": "deit", "maelite": "maelite"}


def _origin_format(ckpt: CanonicalCheckpoint) -> str:
    if ckpt.format != "vitdet_bench":
        return ckpt.format
    return ckpt.meta.get("source_format") or _METHOD_FORMATS.get(ckpt.meta.get("method"), "vitdet_bench")


def _block_window(vit: ViT, i: int) -> tuple[int, int]:
    attn = vit.blocks[i].attn
    return attn.rel_pos_table_window


def adapt_to_vit(
    ckpt: CanonicalCheckpoint,
    vit: ViT,
    source: str = "<state dict>",
    resize_patch_embed: bool = False,
    rel_pos_resize: str = "cubic",
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Fit canonical weights to ``vit``; returns the state dict to load and the report."""
    target = vit.state_dict()
    report = LoadReport(source=source, format=ckpt.format, dropped=dict(ckpt.dropped))
    src = dict(ckpt.state)
    out: dict[str, torch.Tensor] = {}
    dim = vit.embed_dim

    # Layer scale into a model without it: fold gamma into the branch's last linear layer (exact).
    for i in range(vit.depth):
        for ls, linear in (("ls1", "attn.proj"), ("ls2", "mlp.fc2")):
            g = src.get(f"blocks.{i}.{ls}.gamma")
            if g is None or f"blocks.{i}.{ls}.gamma" in target:
                continue
            w, b = f"blocks.{i}.{linear}.weight", f"blocks.{i}.{linear}.bias"
            if w in src and b in src:
                src[w] = src[w] * g[:, None]
                src[b] = src[b] * g
                del src[f"blocks.{i}.{ls}.gamma"]
                report.converted.append((f"blocks.{i}.{ls}.gamma", f"folded into {linear} (model has no layer scale)"))

    # BEiT's q / v biases <-> one qkv bias. A key bias adds q.b_k to every logit of a query, which
    # softmax ignores, so both directions are exact.
    for i in range(vit.depth):
        p = f"blocks.{i}.attn."
        if p + "q_bias" in src and p + "qkv.bias" in target and p + "q_bias" not in target:
            q, v = src.pop(p + "q_bias"), src.pop(p + "v_bias")
            src[p + "qkv.bias"] = torch.cat((q, torch.zeros_like(q), v))
            report.converted.append((p + "q_bias/v_bias", "fused into qkv.bias with a zero key bias"))
        elif p + "qkv.bias" in src and p + "q_bias" in target and p + "qkv.bias" not in target:
            b = src.pop(p + "qkv.bias")
            src[p + "q_bias"], src[p + "v_bias"] = b[:dim], b[2 * dim:]
            report.converted.append((p + "qkv.bias", "split into q_bias/v_bias (key bias dropped: softmax-invariant)"))

    # Relative position bias tables.
    shared = src.pop("rel_pos_bias.relative_position_bias_table", None)
    per_block = {int(m.group(1)): k for k in list(src) if (m := re.match(r"^blocks\.(\d+)\.attn\.relative_position_bias_table$", k))}

    resized_tables: dict[tuple[str, tuple[int, int]], torch.Tensor] = {}

    def fit_table(table: torch.Tensor, dst_window: tuple[int, int], key: str, origin: str) -> torch.Tensor:
        offsets, cls_rows = _split_cls_rows(table)
        side = math.isqrt(offsets.shape[0])
        if side * side != offsets.shape[0] or side % 2 == 0:
            raise CheckpointFormatError(f"{origin}: a bias table with {table.shape[0]} rows is not a square window's")
        src_window = ((side + 1) // 2, (side + 1) // 2)
        new = offsets
        if src_window != tuple(dst_window):
            # A shared table expanded per block is resized once per window size, not once per block.
            memo = (origin, tuple(dst_window))
            if memo not in resized_tables:
                resized_tables[memo] = resize_rel_pos_table(offsets, src_window, dst_window, mode=rel_pos_resize)
            new = resized_tables[memo].clone()
        # BEiT's cls rows (cls->token, token->cls, cls->cls) have no offset: kept as they are where
        # the model's table has them (a pre-training encoder with a cls token), else dropped.
        if target[key].shape[0] == new.shape[0] + NUM_CLS_ENTRIES:
            if cls_rows is None:
                cls_rows = new.new_zeros(NUM_CLS_ENTRIES, new.shape[1])
                report.converted.append((key, f"{NUM_CLS_ENTRIES} cls rows zero-initialised: {origin} has none"))
            new = torch.cat((new, cls_rows))
        elif cls_rows is not None:
            why = f"{NUM_CLS_ENTRIES} cls rows of {origin} (cls->token, token->cls, cls->cls) dropped: the model has no cls token"
            report.converted.append((key, why))
        if src_window != tuple(dst_window):
            report.resized.append((key, tuple(table.shape), tuple(new.shape)))
        return new

    if vit.rel_pos_bias_mode == "shared":
        for mod_name in ("rel_pos_bias_window", "rel_pos_bias_global"):
            module = getattr(vit, mod_name)
            if module is None:
                continue
            key = f"{mod_name}.relative_position_bias_table"
            table, origin = shared, "rel_pos_bias.relative_position_bias_table"
            if key in src:  # one table per kind already (a detector's: BENCH's BEiTDet, ours)
                table, origin = src.pop(key), key
            elif table is None and per_block:
                kind = [i for i in per_block if (vit.blocks[i].window_size > 0) == (mod_name == "rel_pos_bias_window")]
                if kind:
                    origin = per_block[kind[0]]
                    table = src[origin]
                    report.converted.append((key, f"initialised from the per-block table {origin}"))
            if table is not None:
                out[key] = fit_table(table, module.window_size, key, origin)
                if origin == "rel_pos_bias.relative_position_bias_table":
                    report.converted.append((key, "from the checkpoint's shared table"))
        for k in per_block.values():
            src.pop(k)
    elif vit.rel_pos_bias_mode == "per_block":
        for i in range(vit.depth):
            key = f"blocks.{i}.attn.relative_position_bias_table"
            if i in per_block:
                out[key] = fit_table(src.pop(per_block[i]), _block_window(vit, i), key, per_block[i])
            elif shared is not None:
                out[key] = fit_table(shared, _block_window(vit, i), key, "rel_pos_bias.relative_position_bias_table")
                report.converted.append((key, "expanded from the shared table"))
        for k in list(per_block.values()):
            if k in src:
                report.unused.append((k, "block index beyond the model's depth"))
                src.pop(k)
    else:
        if shared is not None:
            report.unused.append(("rel_pos_bias.relative_position_bias_table", "model has rel_pos_bias=None"))
        for k in per_block.values():
            report.unused.append((k, "model has rel_pos_bias=None"))
            src.pop(k)

    for k, v in src.items():
        if k not in target:
            report.unused.append((k, "no such parameter in the model"))
            continue
        want = tuple(target[k].shape)
        if tuple(v.shape) == want:
            out[k] = v
        elif k == "pos_embed" and v.shape[-1] == want[-1]:
            out[k] = fit_pos_embed(v, target[k], vit.pretrain_use_cls_token)
            report.resized.append((k, tuple(v.shape), want))
        elif k.endswith(("attn.rel_pos_h", "attn.rel_pos_w")) and v.shape[1:] == target[k].shape[1:]:
            out[k] = _resize_decomposed_table(v, want[0])
            report.resized.append((k, tuple(v.shape), want))
        elif k == "patch_embed.proj.weight" and resize_patch_embed and v.shape[:2] == target[k].shape[:2]:
            out[k] = resample_patch_embed(v, list(want[-2:]), interpolation="bicubic", antialias=True)
            report.resized.append((k, tuple(v.shape), want))
        else:
            kernel_only = k == "patch_embed.proj.weight" and v.shape[:2] == target[k].shape[:2]
            hint = " (pass resize_patch_embed=True to resample it)" if kernel_only else ""
            report.unused.append((k, f"shape {tuple(v.shape)} does not fit the model's {want}{hint}"))

    resized = {k for k, _, _ in report.resized}
    report.loaded = sorted(k for k in out if k not in resized)
    origin = _origin_format(ckpt)
    if origin != ckpt.format:
        report.origin = origin
    for k in target:
        if k not in out:
            (report.missing_expected if _expected_missing(k, origin) else report.missing_unexpected).append(k)
    return out, report


def _resize_decomposed_table(table: torch.Tensor, length: int) -> torch.Tensor:
    """Linearly resize a decomposed rel-pos table ``(L, head_dim)`` to ``length`` rows: the same
    interpolation Detectron2's ``get_rel_pos`` (and ours) applies at run time, done once at load
    so a detector checkpoint from another input size keeps its global blocks' tables."""
    resized = F.interpolate(table.t()[None], size=length, mode="linear")
    return resized[0].t().contiguous()


def fit_pos_embed(pos: torch.Tensor, target: torch.Tensor, target_has_cls: bool) -> torch.Tensor:
    """Bicubically resize an absolute position table (with or without a cls slot) to ``target``'s."""
    n = pos.shape[1]
    src_cls = math.isqrt(n) ** 2 != n
    grid, cls = (pos[:, 1:], pos[:, :1]) if src_cls else (pos, None)
    src_side = math.isqrt(grid.shape[1])
    dst_n = target.shape[1] - (1 if target_has_cls else 0)
    dst_side = math.isqrt(dst_n)
    if src_side * src_side != grid.shape[1] or dst_side * dst_side != dst_n:
        raise CheckpointFormatError(f"pos_embed {tuple(pos.shape)} -> {tuple(target.shape)}: grids are not square")
    # MAE / DeiT resize with plain bicubic interpolation (no antialias); so do we.
    grid = resample_abs_pos_embed(grid, new_size=[dst_side, dst_side], old_size=[src_side, src_side],
                                  num_prefix_tokens=0, interpolation="bicubic", antialias=False)
    if target_has_cls:
        cls = cls if cls is not None else torch.zeros_like(grid[:, :1])
        grid = torch.cat((cls, grid), dim=1)
    return grid


def load_backbone_checkpoint(
    backbone: nn.Module,
    path: str | dict,
    format: str = "auto",
    resize_patch_embed: bool = False,
    rel_pos_resize: str = "cubic",
    strict: bool = False,
    source: str | None = None,
) -> LoadReport:
    """Load a pre-trained ViT checkpoint into ``backbone`` (a ViT, or any model holding one).

    Args:
        backbone: the :class:`ViT` or a detector containing one.
        path: a checkpoint file, or an already loaded checkpoint object.
        format: one of :data:`FORMATS` or "auto".
        resize_patch_embed: resample patch-embed kernels of another patch size (e.g. ViT-H/14 -> 16).
        rel_pos_resize: BEiT bias-table resizing, "cubic" (BEiT) or "linear" (timm).
        strict: raise when a key is missing unexpectedly or a checkpoint tensor is unused.
        source: the name to report for an in-memory checkpoint.

    Returns:
        the :class:`LoadReport` (also logged).
    """
    from .convmae import find_convvit, load_convvit_checkpoint  # its own converter; it imports this module

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


def save_backbone_export(state: dict[str, torch.Tensor], path: str, meta: dict | None = None) -> str:
    """Write backbone weights in the project's format: ``{"format", "version", "model", "meta"}``.

    ``state`` uses the detection ViT's names (what :func:`to_canonical` returns); ``meta`` is plain
    data (method, arch, image and patch size, epochs / iterations, data) so the file loads with
    ``weights_only=True``.
    """
    data = {"format": EXPORT_TAG, "version": EXPORT_VERSION, "model": {k: v.detach().cpu().contiguous() for k, v in state.items()},
            "meta": dict(meta or {})}
    atomic_torch_save(data, path)
    return path
