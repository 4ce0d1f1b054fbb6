"""Fit canonical backbone weights (any format, the detection ViT's names) to one model.

:func:`adapt_to_vit` is a pipeline of named steps, each a short function over one :class:`_Fit`:

1. :func:`_fold_layer_scale`: BEiT's layer scale into a model without it, folded into the branch's
   last linear layer (exact);
2. :func:`_match_qv_bias`: BEiT's separate q / v biases into one qkv bias, or back (exact: a key
   bias adds the same amount to every logit of a query, which softmax ignores);
3. :func:`_fit_bias_tables`: relative position bias tables to the model's layout (one shared table,
   one per block, or none) and windows, resized with BEiT's geometric interpolation, BEiT's 3 cls
   rows kept where the model's table has them (pre-training) and dropped, with a report line,
   where it has none (the detector);
4. :func:`_fit_by_name`: every other tensor by name: as it is, or resized (absolute position table
   bicubically, decomposed rel-pos tables linearly, patch-embed kernels when asked);
5. :func:`_classify_missing`: what the file did not provide, split by the format's rule into
   expected (relative position for MAE, absolute position for BEiT) and unexpected.

:func:`adapt_to_convvit` does the same for ConvMAE's ConvViT (names as they are, position table
resized). Neither reads a file; the loaders in :mod:`.backbone`, :mod:`.method` and :mod:`.init` do.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from ..modeling.backbone.convvit import ConvViT
from ..modeling.backbone.rel_pos import NUM_CLS_ENTRIES, resize_rel_pos_table
from ..modeling.backbone.vit import ViT
from .formats import CHECKPOINT_FORMATS, CanonicalCheckpoint, CheckpointFormat, CheckpointFormatError, get_format
from .report import LoadReport

__all__ = ["adapt_to_convvit", "adapt_to_vit", "fit_pos_embed"]

_SHARED = "rel_pos_bias.relative_position_bias_table"
_PER_BLOCK = re.compile(r"^blocks\.(\d+)\.attn\.relative_position_bias_table$")


@dataclass
class _Fit:
    """One fit in progress: what is left of the file (``src``), the model's tensors (``target``),
    what will be loaded (``out``) and the report."""

    vit: ViT
    src: dict[str, torch.Tensor]
    target: dict[str, torch.Tensor]
    report: LoadReport
    out: dict[str, torch.Tensor] = field(default_factory=dict)


def adapt_to_vit(
    ckpt: CanonicalCheckpoint,
    vit: ViT,
    source: str = "<state dict>",
    resize_patch_embed: bool = False,
    rel_pos_resize: str = "cubic",
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Fit canonical weights to ``vit`` (the steps of the module docstring).

    Args:
        ckpt: the file's backbone in the detection ViT's names.
        vit: the model's ViT.
        source: the file, for the report.
        resize_patch_embed: resample patch-embed kernels of another patch size.
        rel_pos_resize: BEiT bias-table resizing, "cubic" (BEiT) or "linear" (timm).

    Returns:
        the state dict to load (``strict=False``) and the :class:`LoadReport`.
    """
    fit = _Fit(vit, dict(ckpt.state), vit.state_dict(),
               LoadReport(source=source, format=ckpt.format, dropped=dict(ckpt.dropped)))
    _fold_layer_scale(fit)
    _match_qv_bias(fit)
    _fit_bias_tables(fit, rel_pos_resize)
    _fit_by_name(fit, resize_patch_embed)
    _classify_missing(fit, ckpt)
    return fit.out, fit.report


def _fold_layer_scale(fit: _Fit) -> None:
    """Layer scale into a model without it: gamma folded into the branch's last linear layer."""
    for i in range(fit.vit.depth):
        for ls, linear in (("ls1", "attn.proj"), ("ls2", "mlp.fc2")):
            gamma = f"blocks.{i}.{ls}.gamma"
            g = fit.src.get(gamma)
            if g is None or gamma in fit.target:
                continue
            w, b = f"blocks.{i}.{linear}.weight", f"blocks.{i}.{linear}.bias"
            if w in fit.src and b in fit.src:
                fit.src[w] = fit.src[w] * g[:, None]
                fit.src[b] = fit.src[b] * g
                del fit.src[gamma]
                fit.report.converted.append((gamma, f"folded into {linear} (model has no layer scale)"))


def _match_qv_bias(fit: _Fit) -> None:
    """BEiT's q / v biases <-> one qkv bias, whichever the model has (both directions exact)."""
    dim = fit.vit.embed_dim
    src, target = fit.src, fit.target
    for i in range(fit.vit.depth):
        p = f"blocks.{i}.attn."
        if p + "q_bias" in src and p + "qkv.bias" in target and p + "q_bias" not in target:
            q, v = src.pop(p + "q_bias"), src.pop(p + "v_bias")
            src[p + "qkv.bias"] = torch.cat((q, torch.zeros_like(q), v))
            fit.report.converted.append((p + "q_bias/v_bias", "fused into qkv.bias with a zero key bias"))
        elif p + "qkv.bias" in src and p + "q_bias" in target and p + "qkv.bias" not in target:
            b = src.pop(p + "qkv.bias")
            src[p + "q_bias"], src[p + "v_bias"] = b[:dim], b[2 * dim:]
            fit.report.converted.append((p + "qkv.bias",
                                         "split into q_bias/v_bias (key bias dropped: softmax-invariant)"))


def _split_cls_rows(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(offset rows, BEiT's 3 cls rows or None)`` of a square window's bias table."""
    rows = table.shape[0]
    side = math.isqrt(rows - NUM_CLS_ENTRIES) if rows > NUM_CLS_ENTRIES else 0
    if side * side == rows - NUM_CLS_ENTRIES and side % 2 == 1 and math.isqrt(rows) ** 2 != rows:
        return table[:-NUM_CLS_ENTRIES], table[-NUM_CLS_ENTRIES:]
    return table, None


class _TableFitter:
    """Fits bias tables to the model's windows; a shared table expanded per block is resized once
    per window size, not once per block.

    Args:
        fit: the fit in progress (its report gets the resizes and cls-row lines).
        mode: "cubic" (BEiT's geometric interpolation) or "linear" (timm's).
    """

    def __init__(self, fit: _Fit, mode: str) -> None:
        self.fit = fit
        self.mode = mode
        self.resized: dict[tuple[str, tuple[int, int]], torch.Tensor] = {}

    def __call__(self, table: torch.Tensor, dst_window: tuple[int, int], key: str, origin: str) -> torch.Tensor:
        """``table`` (from the file's ``origin``) fitted to the model's ``key`` of window ``dst_window``."""
        report = self.fit.report
        offsets, cls_rows = _split_cls_rows(table)
        side = math.isqrt(offsets.shape[0])
        if side * side != offsets.shape[0] or side % 2 == 0:
            raise CheckpointFormatError(f"{origin}: a bias table with {table.shape[0]} rows is not a square window's")
        src_window = ((side + 1) // 2, (side + 1) // 2)
        new = offsets
        if src_window != tuple(dst_window):
            memo = (origin, tuple(dst_window))
            if memo not in self.resized:
                self.resized[memo] = resize_rel_pos_table(offsets, src_window, dst_window, mode=self.mode)
            new = self.resized[memo].clone()
        # BEiT's cls rows (cls->token, token->cls, cls->cls) have no offset: kept as they are where
        # the model's table has them (a pre-training encoder with a cls token), else dropped.
        if self.fit.target[key].shape[0] == new.shape[0] + NUM_CLS_ENTRIES:
            if cls_rows is None:
                cls_rows = new.new_zeros(NUM_CLS_ENTRIES, new.shape[1])
                report.converted.append((key, f"{NUM_CLS_ENTRIES} cls rows zero-initialised: {origin} has none"))
            new = torch.cat((new, cls_rows))
        elif cls_rows is not None:
            why = (f"{NUM_CLS_ENTRIES} cls rows of {origin} (cls->token, token->cls, cls->cls) dropped: the model "
                   "has no cls token")
            report.converted.append((key, why))
        if src_window != tuple(dst_window):
            report.resized.append((key, tuple(table.shape), tuple(new.shape)))
        return new


def _fit_bias_tables(fit: _Fit, mode: str) -> None:
    """The file's bias tables (one shared, or one per block) to the model's layout."""
    shared = fit.src.pop(_SHARED, None)
    per_block = {int(m.group(1)): k for k in list(fit.src) if (m := _PER_BLOCK.match(k))}
    fit_table = _TableFitter(fit, mode)
    if fit.vit.rel_pos_bias_mode == "shared":
        _into_shared_tables(fit, fit_table, shared, per_block)
    elif fit.vit.rel_pos_bias_mode == "per_block":
        _into_block_tables(fit, fit_table, shared, per_block)
    else:
        if shared is not None:
            fit.report.unused.append((_SHARED, "model has rel_pos_bias=None"))
        for k in per_block.values():
            fit.report.unused.append((k, "model has rel_pos_bias=None"))
            fit.src.pop(k)


def _into_shared_tables(fit: _Fit, fit_table: _TableFitter, shared: torch.Tensor | None,
                        per_block: dict[int, str]) -> None:
    """A model with one table for its window blocks and one for its global blocks (BENCH's BEiTDet)."""
    vit, src, report = fit.vit, fit.src, fit.report
    for mod_name in ("rel_pos_bias_window", "rel_pos_bias_global"):
        module = getattr(vit, mod_name)
        if module is None:
            continue
        key = f"{mod_name}.relative_position_bias_table"
        table, origin = shared, _SHARED
        if key in src:  # one table per kind already (a detector's: BENCH's BEiTDet, ours)
            table, origin = src.pop(key), key
        elif table is None and per_block:
            kind = [i for i in per_block if (vit.blocks[i].window_size > 0) == (mod_name == "rel_pos_bias_window")]
            if kind:
                origin = per_block[kind[0]]
                table = src[origin]
                report.converted.append((key, f"initialised from the per-block table {origin}"))
        if table is not None:
            fit.out[key] = fit_table(table, module.window_size, key, origin)
            if origin == _SHARED:
                report.converted.append((key, "from the checkpoint's shared table"))
    for k in per_block.values():
        src.pop(k)


def _into_block_tables(fit: _Fit, fit_table: _TableFitter, shared: torch.Tensor | None,
                       per_block: dict[int, str]) -> None:
    """A model with one table per block (BEiT fine-tuned)."""
    vit = fit.vit
    for i in range(vit.depth):
        key = f"blocks.{i}.attn.relative_position_bias_table"
        window = vit.blocks[i].attn.rel_pos_table_window
        if i in per_block:
            fit.out[key] = fit_table(fit.src.pop(per_block[i]), window, key, per_block[i])
        elif shared is not None:
            fit.out[key] = fit_table(shared, window, key, _SHARED)
            fit.report.converted.append((key, "expanded from the shared table"))
    for k in list(per_block.values()):
        if k in fit.src:
            fit.report.unused.append((k, "block index beyond the model's depth"))
            fit.src.pop(k)


def _fit_by_name(fit: _Fit, resize_patch_embed: bool) -> None:
    """Every other tensor by name: as it is, resized when its kind allows, else reported unused."""
    for k, v in fit.src.items():
        if k not in fit.target:
            fit.report.unused.append((k, "no such parameter in the model"))
            continue
        own = fit.target[k]
        want = tuple(own.shape)
        if tuple(v.shape) == want:
            fit.out[k] = v
        elif k == "pos_embed" and v.shape[-1] == want[-1]:
            fit.out[k] = fit_pos_embed(v, own, fit.vit.pretrain_use_cls_token)
            fit.report.resized.append((k, tuple(v.shape), want))
        elif k.endswith(("attn.rel_pos_h", "attn.rel_pos_w")) and v.shape[1:] == own.shape[1:]:
            fit.out[k] = _resize_decomposed_table(v, want[0])
            fit.report.resized.append((k, tuple(v.shape), want))
        elif k == "patch_embed.proj.weight" and resize_patch_embed and v.shape[:2] == own.shape[:2]:
            fit.out[k] = resample_patch_embed(v, list(want[-2:]), interpolation="bicubic", antialias=True)
            fit.report.resized.append((k, tuple(v.shape), want))
        else:
            kernel_only = k == "patch_embed.proj.weight" and v.shape[:2] == own.shape[:2]
            hint = " (pass resize_patch_embed=True to resample it)" if kernel_only else ""
            fit.report.unused.append((k, f"shape {tuple(v.shape)} does not fit the model's {want}{hint}"))


def _missing_rule(ckpt: CanonicalCheckpoint) -> tuple[str, CheckpointFormat]:
    """The format whose expected-missing rule applies (an export's source) and that format."""
    origin = get_format(ckpt.format).origin(ckpt) if ckpt.format in CHECKPOINT_FORMATS else ckpt.format
    return origin, get_format(origin) if origin in CHECKPOINT_FORMATS else CheckpointFormat()


def _classify_missing(fit: _Fit, ckpt: CanonicalCheckpoint) -> None:
    """The report's loaded keys, and the model keys the file did not provide, expected or not."""
    report = fit.report
    resized = {k for k, _, _ in report.resized}
    report.loaded = sorted(k for k in fit.out if k not in resized)
    origin, rule = _missing_rule(ckpt)
    if origin != ckpt.format:
        report.origin = origin
    for k in fit.target:
        if k not in fit.out:
            (report.missing_expected if rule.expected_missing(k) else report.missing_unexpected).append(k)


def _resize_decomposed_table(table: torch.Tensor, length: int) -> torch.Tensor:
    """Linearly resize a decomposed rel-pos table ``(L, head_dim)`` to ``length`` rows: the same
    interpolation Detectron2's ``get_rel_pos`` (and ours) applies at run time, done once at load
    so a detector checkpoint from another input size keeps its global blocks' tables."""
    resized = F.interpolate(table.t()[None], size=length, mode="linear")
    return resized[0].t().contiguous()


def fit_pos_embed(pos: torch.Tensor, target: torch.Tensor, target_has_cls: bool) -> torch.Tensor:
    """Bicubically resize an absolute position table (with or without a cls slot) to ``target``'s.

    Args:
        pos: ``(1, [1 +] N, D)`` from the file.
        target: the model's table ``(1, [1 +] M, D)``.
        target_has_cls: the model's table has a cls slot (filled from the file's, or zeros).
    """
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


def adapt_to_convvit(ckpt: CanonicalCheckpoint, convvit: ConvViT,
                     source: str = "<state dict>") -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Fit canonical ConvViT weights to ``convvit``: the state dict to load and the report.

    Names load as they are (the ConvViT keeps ConvMAE's); the position table is resized bicubically
    without antialias, as ConvMAE's detector and MAE resize it. An export's report names the method
    that wrote it.
    """
    target = convvit.state_dict()
    report = LoadReport(source=source, format=ckpt.format, dropped=dict(ckpt.dropped))
    if ckpt.meta.get("method"):
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
            out[k] = resample_abs_pos_embed(v, new_size=[dst, dst], old_size=[src, src], num_prefix_tokens=0,
                                            interpolation="bicubic", antialias=False)
            report.resized.append((k, tuple(v.shape), want))
        else:
            report.unused.append((k, f"shape {tuple(v.shape)} does not fit the model's {want}"))
    rule = get_format(ckpt.format)
    for k in target:
        if k not in out:
            (report.missing_expected if rule.expected_missing(k) else report.missing_unexpected).append(k)
    return out, report
