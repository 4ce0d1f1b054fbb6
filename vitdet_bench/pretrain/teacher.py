"""Frozen ViT teachers: the targets of feature-reconstruction MIM and of MAE-Lite's distillation.

A teacher is any ViT checkpoint the backbone loader reads (MAE / MoCo v3 / DeiT / timm files and
this project's own exports), plus a CLIP image tower saved as an open_clip / OpenAI state dict
(``visual.conv1.weight``, ``visual.transformer.resblocks.N.*``, ``visual.proj``). Its ViT is this
project's :class:`~vitdet_bench.modeling.ViT`, filled by
:func:`~vitdet_bench.checkpoint.load_backbone_checkpoint` (whose report must come out clean);
what the detector never uses and a teacher needs (cls token, CLIP's pre-norm, the final norm,
CLIP's projection) comes from the same file. The teacher runs at the student's patch size and grid:
a patch-14 kernel is resampled to 16 with timm's ``resample_patch_embed`` (EVA's
``interpolate_patch_14to16``) and the position table is resized bicubically. It normalises its
input with its own pixel statistics, runs frozen, without gradients and, on CUDA, under autocast
(as EVA runs its CLIP teacher).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from dataclasses import dataclass
from functools import partial
from typing import Any, Sequence

import torch
import torch.nn as nn
from timm.layers import QuickGELU

from ..checkpoint import CheckpointError, CheckpointFormatError, load_backbone_checkpoint, read_checkpoint, to_canonical
from ..checkpoint.formats import Probe, detect, openclip_visual_to_timm
from ..data.constants import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD
from ..modeling.backbone.vit import ViT
from .common import method_label

__all__ = [
    "CLIP_PIXEL_MEAN",
    "CLIP_PIXEL_STD",
    "TeacherOutput",
    "ViTTeacher",
    "build_teacher",
    "openclip_visual_to_timm",
]

logger = logging.getLogger(__name__)

# Heads of the published ViT widths (DeiT-Ti/S, ViT-B/L/H, EVA-g); a file that does not say
# (anything but this project's exports) is assumed to follow them unless num_heads is given.
STANDARD_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16, 1664: 16}

@dataclass
class TeacherOutput:
    """What a teacher returns, in float32.

    Attributes:
        features: patch features ``(B, L, out_dim)`` after the final norm (and projection), for the
            patches it saw (all, or the kept ones in ``ids_keep`` order); prefix tokens dropped.
        logits: pre-softmax attention logits ``(B, heads, T, T)`` of the asked block over the
            ``T = prefix + L`` tokens, or ``None``.
    """

    features: torch.Tensor
    logits: torch.Tensor | None = None


class ViTTeacher(nn.Module):
    """A frozen ViT that turns images into targets (see the module docstring).

    Args:
        vit: the teacher's ViT (all blocks global), at the student's patch size and grid.
        cls_token: ``(1, 1, D)`` or ``None`` (then the teacher runs without one).
        norm_pre: CLIP's ``ln_pre`` (``nn.Identity`` for other ViTs).
        norm: the final norm (``nn.Identity`` when the file has none).
        proj: CLIP's projection to the joint space (``None``: features stay ``D`` wide).
        pixel_mean: the teacher's input mean, on the 0-255 scale.
        pixel_std: the teacher's input std, on the 0-255 scale.
        name: what the teacher is, for reports and exports ("CLIP ViT-L/14", "MoCo v3 export").
        info: plain-data description of the file (path, format, sizes) for export metadata.
    """

    def __init__(self, vit: ViT, cls_token: torch.Tensor | None, norm_pre: nn.Module, norm: nn.Module,
                 proj: nn.Linear | None, pixel_mean: Sequence[float], pixel_std: Sequence[float], name: str,
                 info: dict | None = None) -> None:
        super().__init__()
        self.vit = vit
        self.cls_token = nn.Parameter(cls_token.detach().clone()) if cls_token is not None else None
        self.norm_pre = norm_pre
        self.norm = norm
        self.proj = proj
        self.name = name
        self.info = dict(info or {})
        for name, value in (("pixel_mean", pixel_mean), ("pixel_std", pixel_std)):
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    @property
    def embed_dim(self) -> int:
        return self.vit.embed_dim

    @property
    def out_dim(self) -> int:
        return self.proj.out_features if self.proj is not None else self.vit.embed_dim

    @property
    def num_heads(self) -> int:
        return self.vit.blocks[0].attn.num_heads

    @property
    def patch_size(self) -> int:
        return self.vit.patch_size

    @property
    def num_prefix_tokens(self) -> int:
        return 1 if self.cls_token is not None else 0

    @property
    def grid(self) -> int | None:
        """Side of the position table's grid (the student's), ``None`` without absolute positions."""
        pos = self.vit.pos_embed
        if pos is None:
            return None
        return math.isqrt(pos.shape[1] - (1 if self.vit.pretrain_use_cls_token else 0))

    def describe(self) -> dict:
        """Plain data for export metadata."""
        return {"name": self.name, **self.info, "embed_dim": self.embed_dim, "depth": self.vit.depth,
                "num_heads": self.num_heads, "patch_size": self.patch_size, "out_dim": self.out_dim,
                "cls_token": self.cls_token is not None, "pixel_mean": [float(v) for v in self.pixel_mean.flatten()],
                "pixel_std": [float(v) for v in self.pixel_std.flatten()]}

    def train(self, mode: bool = True) -> "ViTTeacher":
        return super().train(False)  # always frozen

    def _tokens(self, images: torch.Tensor, ids_keep: torch.Tensor | None) -> torch.Tensor:
        x = (images - self.pixel_mean) / self.pixel_std
        x = self.vit.patch_embed(x)  # (B, H/p, W/p, D)
        if self.grid is not None and tuple(x.shape[1:3]) != (self.grid, self.grid):
            raise ValueError(f"teacher {self.name}: input grid {tuple(x.shape[1:3])} != its position grid "
                             f"{(self.grid, self.grid)}; build it with the student's image_size")
        x = x.flatten(1, 2)
        pos = self.vit.pos_embed
        pos_cls = pos is not None and self.vit.pretrain_use_cls_token
        if pos is not None:
            x = x + (pos[:, 1:] if pos_cls else pos)
        if ids_keep is not None:
            x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        if self.cls_token is not None:
            cls = self.cls_token + pos[:, :1] if pos_cls else self.cls_token
            x = torch.cat((cls.expand(x.shape[0], -1, -1), x), dim=1)
        return self.norm_pre(x)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, ids_keep: torch.Tensor | None = None,
                logits_block: int | None = None) -> TeacherOutput:
        """Targets for ``images``.

        Args:
            images: ``(B, 3, H, W)`` on the 0-255 scale (the student's crop; normalised here).
            ids_keep: ``(B, L)`` patch indexes to run on, in this order (MAE-Lite: the student's
                visible set); ``None``: every patch.
            logits_block: also return this block's pre-softmax attention logits (-1: the last).

        Returns:
            a :class:`TeacherOutput` (float32).
        """
        device = images.device
        autocast = (torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda")
                                   else torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext())
        self.vit.capture_attn_logits([] if logits_block is None else [logits_block])
        try:
            with autocast:
                x = self._tokens(images.float(), ids_keep).unsqueeze(1)  # blocks take (B, H, W, D)
                for i in range(self.vit.depth):
                    x = self.vit.run_block(i, x, None)
                logits = self.vit.pop_attn_logits(logits_block) if logits_block is not None else None
                x = self.norm(x.squeeze(1)[:, self.num_prefix_tokens:])
                if self.proj is not None:
                    x = self.proj(x)
        finally:
            self.vit.capture_attn_logits([])
        return TeacherOutput(x.float(), logits.float() if logits is not None else None)


def _infer_arch(state: dict[str, torch.Tensor], source: str) -> dict:
    """Width, depth, patch size, MLP ratio and biases of the ViT in a canonical state dict."""
    w = state.get("patch_embed.proj.weight")
    if w is None or w.ndim != 4:
        raise CheckpointFormatError(f"{source}: no patch embedding 'patch_embed.proj.weight' (4-D): not a ViT a "
                                    "teacher can run")
    if w.shape[-1] != w.shape[-2]:
        raise CheckpointFormatError(f"{source}: non-square patch kernel {tuple(w.shape)} in 'patch_embed.proj.weight'")
    if any(k.endswith("relative_position_bias_table") or k.startswith("rel_pos_bias.") for k in state):
        raise CheckpointFormatError(f"{source}: BEiT-style relative position tables are not supported in a teacher "
                                    "(it must run on any subset of tokens); use an absolute-position ViT")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^blocks\.(\d+)\.", k))}
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    if not blocks or fc1 is None:
        raise CheckpointFormatError(f"{source}: no transformer blocks ('blocks.0.mlp.fc1.weight' missing)")
    width = w.shape[0]
    return dict(embed_dim=width, depth=max(blocks) + 1, patch_size=int(w.shape[-1]), mlp_ratio=fc1.shape[0] / width,
                qkv_bias="blocks.0.attn.qkv.bias" in state or "blocks.0.attn.q_bias" in state,
                patch_bias="patch_embed.proj.bias" in state, norm_pre="norm_pre.weight" in state,
                pos_embed="pos_embed" in state)


def _check(source: str, what: str, found: Any, expected: Any) -> None:
    if expected is not None and found != expected:
        raise CheckpointError(f"{source}: the teacher's {what} is {found}, the config expects {expected}")


def _read(path: str | dict, format: str) -> tuple[Any, Any, str, str]:
    """``(object for the loader, canonical checkpoint, source name, origin format)``; open_clip
    towers are renamed to timm's names first."""
    obj = read_checkpoint(path) if isinstance(path, str) else path
    source = path if isinstance(path, str) else "<in-memory teacher checkpoint>"
    origin = format
    tower = detect(Probe.of(obj), ("teacher",))  # a CLIP image tower: renamed to timm's names first
    if tower is not None:
        obj, origin, format = tower.to_timm(obj), tower.name, "timm"
    try:
        ckpt = to_canonical(obj, format)
    except CheckpointFormatError as e:
        raise CheckpointFormatError(f"{source}: not a ViT checkpoint a teacher can use: {e}") from None
    return obj, ckpt, source, ckpt.format if origin == "auto" else origin


def _heads(meta: dict, num_heads: int | None, width: int, source: str) -> int:
    if meta.get("num_heads") is not None:
        _check(source, "number of heads (from its metadata)", meta["num_heads"], num_heads)
        return int(meta["num_heads"])
    if num_heads is None:
        num_heads = STANDARD_HEADS.get(width, max(width // 64, 1))
        logger.warning("Teacher %s does not record its heads; assuming %d for width %d (set teacher.num_heads "
                       "if that is wrong)", source, num_heads, width)
    return num_heads


def _load_vit(vit: ViT, obj: Any, format: str, arch: dict, source: str) -> None:
    """Fill ``vit`` through the backbone loader; anything but CLIP's missing patch bias and its
    pre-norm (taken by the teacher itself) left over is an error showing the load report."""
    report = load_backbone_checkpoint(vit, obj, format=format, resize_patch_embed=arch["patch_size"] != vit.patch_size,
                                      source=source)
    allowed_missing = set() if arch["patch_bias"] else {"patch_embed.proj.bias"}
    problems = [k for k in report.missing_unexpected + report.missing_expected if k not in allowed_missing]
    problems += [k for k, _ in report.unused if not k.startswith("norm_pre.")]
    if problems:
        raise CheckpointError(f"{source}: the teacher ViT does not take this checkpoint whole ({problems}):\n"
                              f"{report.summary()}")
    if not arch["patch_bias"]:
        nn.init.zeros_(vit.patch_embed.proj.bias)  # CLIP's conv1 has no bias


def build_teacher(
    path: str | dict,
    image_size: int = 224,
    patch_size: int = 16,
    name: str = "",
    format: str = "auto",
    embed_dim: int | None = None,
    depth: int | None = None,
    num_heads: int | None = None,
    checkpoint_patch_size: int | None = None,
    resample_patch_embed: bool = True,
    act: str = "gelu",
    norm_eps: float = 1e-6,
    projection: bool | None = None,
    pixel_mean: Sequence[float] | None = None,
    pixel_std: Sequence[float] | None = None,
) -> ViTTeacher:
    """Load a frozen :class:`ViTTeacher` from a checkpoint file (a LazyConfig target).

    Args:
        path: the checkpoint (any format :func:`~vitdet_bench.checkpoint.load_backbone_checkpoint`
            reads, or an open_clip / OpenAI CLIP state dict), or such a checkpoint already loaded.
        image_size: the student's input size (the teacher's position table is resized to its grid).
        patch_size: the student's patch size (the teacher's kernel is resampled to it).
        name: what the teacher is ("CLIP ViT-L/14 (OpenAI)"); default: from the file.
        format: the loader's format ("auto", "mae", "mocov3", "deit", "timm", "vitdet_bench").
        embed_dim, depth, checkpoint_patch_size: what the config expects of the file; a mismatch
            is an error naming the file (``None``: not checked).
        num_heads: attention heads (weights do not say; this project's exports record it,
            otherwise the published count for the width is assumed).
        resample_patch_embed: allow resampling a kernel of another patch size (e.g. CLIP's 14).
        act: MLP activation, "gelu" or "quick_gelu" (OpenAI's CLIP).
        norm_eps: LayerNorm epsilon (1e-6 for MAE / MoCo v3 / DeiT, 1e-5 for CLIP).
        projection: apply the file's ``head`` / CLIP ``proj`` to the features (``None``: only for
            open_clip files, whose ``proj`` is the image embedding; a timm file's ``head`` may be
            a classifier, so say so explicitly).
        pixel_mean, pixel_std: the teacher's input statistics on the 0-255 scale (``None``: from
            the export's metadata, else ImageNet's).
    """
    if act not in ("gelu", "quick_gelu"):
        raise ValueError(f"teacher act must be 'gelu' or 'quick_gelu', got {act!r}")
    obj, ckpt, source, origin = _read(path, format)
    arch = _infer_arch(ckpt.state, source)
    width, meta = arch["embed_dim"], ckpt.meta
    _check(source, "width (embed_dim)", width, embed_dim)
    _check(source, "depth", arch["depth"], depth)
    _check(source, "patch size", arch["patch_size"], checkpoint_patch_size)
    num_heads = _heads(meta, num_heads, width, source)
    if arch["patch_size"] != patch_size and not resample_patch_embed:
        raise CheckpointError(f"{source}: the teacher's patch size is {arch['patch_size']}, the student's "
                              f"{patch_size}; set resample_patch_embed=True to resample its kernel")
    num_pos = ckpt.state["pos_embed"].shape[1] if arch["pos_embed"] else 0
    vit = ViT(img_size=image_size, patch_size=patch_size, embed_dim=width, depth=arch["depth"], num_heads=num_heads,
              mlp_ratio=arch["mlp_ratio"], qkv_bias=arch["qkv_bias"], norm_layer=partial(nn.LayerNorm, eps=norm_eps),
              act_layer=QuickGELU if act == "quick_gelu" else nn.GELU, use_abs_pos=arch["pos_embed"],
              pretrain_img_size=image_size,
              pretrain_use_cls_token=arch["pos_embed"] and math.isqrt(num_pos) ** 2 != num_pos)
    _load_vit(vit, obj, ckpt.format, arch, source)
    extras = {**ckpt.extras, **{k: v for k, v in ckpt.state.items() if k.startswith("norm_pre.")}}
    norm_pre = _layer_norm(extras, "norm_pre", width, norm_eps, source) if arch["norm_pre"] else nn.Identity()
    norm = _layer_norm(extras, "norm", width, norm_eps, source) if "norm.weight" in extras else nn.Identity()
    if projection is None:
        projection = origin == "open_clip" and "head.weight" in extras
    proj = _projection(extras, width, source) if projection else None
    cls = extras.get("cls_token")
    if cls is not None and tuple(cls.shape) != (1, 1, width):
        raise CheckpointError(f"{source}: cls_token has shape {tuple(cls.shape)}, expected {(1, 1, width)}")
    absent = [n for n, gone in (("cls token", cls is None), ("final norm", "norm.weight" not in extras)) if gone]
    if absent:
        logger.warning("Teacher %s has no %s: it runs without", source, " and no ".join(absent))
    pixel_mean = pixel_mean or meta.get("pixel_mean") or IMAGENET_PIXEL_MEAN
    pixel_std = pixel_std or meta.get("pixel_std") or IMAGENET_PIXEL_STD
    method = meta.get("method")
    name = name or (f"{method_label(method)} export" if method else f"{origin} ViT (width {width})")
    info = {"path": source, "format": origin, "method": method, "checkpoint_patch_size": arch["patch_size"]}
    teacher = ViTTeacher(vit, cls, norm_pre, norm, proj, pixel_mean, pixel_std, name, info)
    logger.info("Teacher '%s' from %s: width %d, depth %d, %d heads, patch %d%s, out %d, cls token %s, final norm %s",
                name, source, width, arch["depth"], num_heads, arch["patch_size"],
                f" -> {patch_size} (resampled)" if arch["patch_size"] != patch_size else "", teacher.out_dim,
                "yes" if cls is not None else "no", "yes" if "norm.weight" in extras else "no")
    return teacher


def _layer_norm(extras: dict[str, torch.Tensor], key: str, width: int, eps: float, source: str) -> nn.LayerNorm:
    norm = nn.LayerNorm(width, eps=eps)
    try:
        norm.load_state_dict({"weight": extras[f"{key}.weight"], "bias": extras[f"{key}.bias"]})
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{source}: '{key}.weight' / '{key}.bias' do not form a LayerNorm of width "
                              f"{width}: {e}") from None
    return norm


def _projection(extras: dict[str, torch.Tensor], width: int, source: str) -> nn.Linear:
    w = extras.get("head.weight")
    if w is None or w.ndim != 2 or w.shape[1] != width:
        found = tuple(w.shape) if w is not None else "none"
        raise CheckpointError(f"{source}: projection=True needs 'head.weight' (out, {width}) (CLIP's proj); found "
                              f"{found}")
    proj = nn.Linear(width, w.shape[0], bias="head.bias" in extras)
    proj.load_state_dict({"weight": w, **({"bias": extras["head.bias"]} if "head.bias" in extras else {})})
    return proj
