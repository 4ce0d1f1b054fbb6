"""ConvViT: the hybrid convolution + ViT backbone of ConvMAE (Gao et al., 2022) and FastConvMAE.

Three stages (``DET/models/convmae.py`` / ``models_convmae.py`` of Alpha-VL/ConvMAE):

* stage 1 (stride 4): ``patch_embed1`` (4x4 stride-4 conv, LayerNorm, GELU), then ``CBlock``\\ s;
* stage 2 (stride 8): ``patch_embed2`` (2x2 stride-2 conv, LayerNorm, GELU), then ``CBlock``\\ s;
* stage 3 (stride 16): ``patch_embed3`` (2x2 stride-2 conv, LayerNorm, GELU), ``patch_embed4``
  (Linear), a fixed sin-cos position table without a cls token, and transformer blocks: the
  framework's ViT :class:`~.vit.Block`, so window + global attention and both kinds of relative
  position work exactly as in :class:`~.vit.ViT`.

A ``CBlock`` is ``x + DropPath(conv1x1 -> 5x5 depthwise conv -> conv1x1 (LN(x)))`` then
``x + DropPath(1x1-conv MLP (LN(x)))``. Masked pre-training multiplies the features by the visible
mask right before the depthwise conv (masked convolution), so masked pixels never reach visible
ones; FastConvMAE passes several disjoint masks and recombines one depthwise conv per mask.

The detection form returns stride 4 / 8 / 16 maps from the three stages plus a max-pooled stride
32, named ``s4`` ... ``s32`` for :class:`~.pyramid.FPN`. Parameter names are the official ones
(``patch_embed1.proj``, ``blocks1.0.attn``, ``blocks3.0.attn.qkv``), so released ConvMAE checkpoints
load without renames.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint
from timm.layers import DropPath, LayerNorm2d, Mlp, PatchEmbed, trunc_normal_

from .rel_pos import RelativePositionBias
from .utils import get_abs_pos
from .vit import REL_POS_BIAS, Block, TransformerTrainingFacts

__all__ = ["CBlock", "CONVVIT_PRESETS", "ConvPatchEmbed", "ConvViT", "build_convvit", "convvit_preset"]

# A visibility map (B, 1, H, W) with 1 on visible pixels (ConvMAE), or several disjoint ones whose
# sum is 1 everywhere (FastConvMAE's complementary masks).
Visibility = torch.Tensor | Sequence[torch.Tensor] | None


class ConvPatchEmbed(PatchEmbed):
    """timm's ``PatchEmbed`` (k x k stride-k conv, LayerNorm) followed by GELU, NCHW in and out.

    ConvMAE's ``PatchEmbed`` normalises with ``nn.LayerNorm``'s default eps (1e-5).

    Args:
        patch_size: kernel and stride.
        in_chans: input channels.
        embed_dim: output channels.
        eps: LayerNorm epsilon.
    """

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, eps: float = 1e-5) -> None:
        super().__init__(img_size=None, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                         norm_layer=partial(nn.LayerNorm, eps=eps), flatten=False, output_fmt="NHWC",
                         strict_img_size=False)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> ``(B, embed_dim, H / p, W / p)``."""
        return self.act(super().forward(x)).permute(0, 3, 1, 2)


class CBlock(nn.Module):
    """ConvMAE's convolution block with optional masked depthwise convolution.

    Args:
        dim: channels.
        mlp_ratio: hidden channels of the 1x1-conv MLP over ``dim``.
        drop_path: stochastic depth rate of both branches.
        kernel_size: depthwise kernel (5 in ConvMAE).
        eps: LayerNorm epsilon (ConvMAE's CBlock uses ``nn.LayerNorm``'s default 1e-5).
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, drop_path: float = 0.0, kernel_size: int = 5,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim, eps=eps)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        # Named "attn" as in ConvMAE: the depthwise conv plays the token-mixing role.
        self.attn = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = LayerNorm2d(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, use_conv=True)

    def forward(self, x: torch.Tensor, visible: Visibility = None) -> torch.Tensor:
        """Args:
            x: ``(B, C, H, W)``.
            visible: ``None`` (detection); one ``(B, 1, H, W)`` 0/1 map (ConvMAE: the features are
                multiplied by it before the depthwise conv); or a sequence of disjoint maps that sum
                to 1 (FastConvMAE: one depthwise conv per map, each kept where its map is 1).

        Returns:
            ``(B, C, H, W)``.
        """
        y = self.conv1(self.norm1(x))
        if visible is None:
            y = self.attn(y)
        elif isinstance(visible, torch.Tensor):
            y = self.attn(y * visible)
        else:
            y = sum(v * self.attn(y * v) for v in visible)
        x = x + self.drop_path(self.conv2(y))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ConvViT(TransformerTrainingFacts, nn.Module):
    """ConvMAE's hybrid backbone for detection and pre-training.

    Args:
        img_size: detection input size (square); sizes the global blocks' relative position.
        in_chans: input channels.
        embed_dims: channels of the three stages (ConvViT-B: 256, 384, 768).
        depths: blocks per stage (ConvViT-B: 2, 2, 11).
        num_heads: attention heads of stage 3.
        mlp_ratios: MLP hidden size over the channels, per stage.
        patch_sizes: downsampling of each stage's embedding (4, 2, 2: strides 4, 8, 16).
        qkv_bias: bias in the stage-3 qkv projections.
        drop_path_rate: stochastic depth, rising linearly over all blocks of all stages (ConvMAE).
        norm_layer: stage-3 normalization (LayerNorm, eps 1e-6).
        use_abs_pos: add the (interpolated) pre-training position table to the stage-3 tokens.
        pretrain_img_size: image size the position table was trained at (224: a 14 x 14 table).
        freeze_pos_embed: keep the position table fixed (ConvMAE's detector loads the pre-trained
            sin-cos table and freezes it).
        use_rel_pos: decomposed relative position in every stage-3 block (ViTDet).
        rel_pos_bias: BEiT-style bias tables, ``"shared"`` (one for the window blocks, one for the
            global blocks: ConvMAE's detector), ``"per_block"`` or ``None``.
        window_size: window side of the window blocks, in stage-3 tokens.
        window_block_indexes: stage-3 blocks with window attention; the others are global.
        mask_window_padding: keep zero-padding tokens out of window attention.
        use_act_checkpoint: recompute every block in the backward pass.
        use_sdpa: fused attention kernels.
    """

    def __init__(
        self,
        img_size: int = 1024,
        in_chans: int = 3,
        embed_dims: Sequence[int] = (256, 384, 768),
        depths: Sequence[int] = (2, 2, 11),
        num_heads: int = 12,
        mlp_ratios: Sequence[float] = (4.0, 4.0, 4.0),
        patch_sizes: Sequence[int] = (4, 2, 2),
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = partial(nn.LayerNorm, eps=1e-6),
        use_abs_pos: bool = True,
        pretrain_img_size: int = 224,
        freeze_pos_embed: bool = False,
        use_rel_pos: bool = False,
        rel_pos_bias: str | None = None,
        window_size: int = 0,
        window_block_indexes: Sequence[int] = (),
        mask_window_padding: bool = False,
        use_act_checkpoint: bool = False,
        use_sdpa: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("embed_dims", embed_dims), ("depths", depths), ("mlp_ratios", mlp_ratios),
                            ("patch_sizes", patch_sizes)):
            if len(value) != 3:
                raise ValueError(f"ConvViT has three stages: {name} needs 3 values, got {list(value)}")
        self.embed_dims = tuple(int(d) for d in embed_dims)
        self.depths = tuple(int(d) for d in depths)
        self.patch_sizes = tuple(int(p) for p in patch_sizes)
        self.strides = tuple(math.prod(self.patch_sizes[: i + 1]) for i in range(3))
        self.patch_size = self.strides[-1]  # one stage-3 token covers patch_size x patch_size pixels
        self.embed_dim = self.embed_dims[-1]
        self.depth = self.depths[-1]
        d3 = self.depth
        for i in window_block_indexes:
            if not 0 <= i < d3:
                raise ValueError(f"window block index {i} is out of range for {d3} stage-3 blocks")
        if window_block_indexes and window_size <= 0:
            raise ValueError("window_block_indexes are given but window_size is not positive")
        if rel_pos_bias not in REL_POS_BIAS:
            raise ValueError(f"rel_pos_bias must be one of {REL_POS_BIAS}, got {rel_pos_bias!r}")
        for size, what in ((img_size, "img_size"), (pretrain_img_size, "pretrain_img_size")):
            if size % self.patch_size:
                raise ValueError(f"{what} {size} is not a multiple of the stage-3 stride {self.patch_size}")
        self.window_block_indexes = tuple(window_block_indexes)
        self.rel_pos_bias_mode = rel_pos_bias
        self.use_act_checkpoint = use_act_checkpoint
        self.pretrain_img_size = pretrain_img_size

        c1, c2, c3 = self.embed_dims
        total = sum(self.depths)  # ConvMAE: one stochastic-depth ramp over the blocks of all stages
        dpr = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.patch_embed1 = ConvPatchEmbed(self.patch_sizes[0], in_chans, c1)
        self.blocks1 = nn.ModuleList(CBlock(c1, mlp_ratios[0], dpr[i]) for i in range(self.depths[0]))
        self.patch_embed2 = ConvPatchEmbed(self.patch_sizes[1], c1, c2)
        self.blocks2 = nn.ModuleList(CBlock(c2, mlp_ratios[1], dpr[self.depths[0] + i]) for i in range(self.depths[1]))
        self.patch_embed3 = ConvPatchEmbed(self.patch_sizes[2], c2, c3)
        self.patch_embed4 = nn.Linear(c3, c3)
        if use_abs_pos:
            grid = pretrain_img_size // self.patch_size
            self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, c3), requires_grad=not freeze_pos_embed)
            trunc_normal_(self.pos_embed, std=0.02)
        else:
            self.pos_embed = None
        grid = (img_size // self.patch_size, img_size // self.patch_size)
        first = self.depths[0] + self.depths[1]
        self.blocks3 = nn.ModuleList(
            Block(
                dim=c3,
                num_heads=num_heads,
                mlp_ratio=mlp_ratios[2],
                qkv_bias=qkv_bias,
                drop_path=dpr[first + i],
                norm_layer=norm_layer,
                use_rel_pos=use_rel_pos,
                rel_pos_table=rel_pos_bias == "per_block",
                window_size=window_size if i in self.window_block_indexes else 0,
                input_size=grid,
                mask_window_padding=mask_window_padding,
                use_sdpa=use_sdpa,
            )
            for i in range(d3)
        )
        self.rel_pos_bias_window = self.rel_pos_bias_global = None
        if rel_pos_bias == "shared":
            if self.window_block_indexes:
                self.rel_pos_bias_window = RelativePositionBias((window_size, window_size), num_heads)
            if len(self.window_block_indexes) < d3:
                self.rel_pos_bias_global = RelativePositionBias(grid, num_heads)
        self.apply(self._init_weights)

    # --- training facts (init, num_layers, no_weight_decay: TransformerTrainingFacts, as the ViT) ---

    def layer_id(self, name: str) -> int:
        """Layer index for layer-wise lr decay as ConvMAE fine-tunes: the embeddings, the position
        table and both conv stages 0, stage-3 block i -> i + 1, anything else depth + 1."""
        if name.startswith(("pos_embed", "patch_embed", "blocks1.", "blocks2.")):
            return 0
        if name.startswith("blocks3."):
            return int(name.split(".")[1]) + 1
        return self.depth + 1

    def output_channels(self) -> dict[str, int]:
        c1, c2, c3 = self.embed_dims
        return {f"s{self.strides[0]}": c1, f"s{self.strides[1]}": c2, f"s{self.strides[2]}": c3,
                f"s{2 * self.strides[2]}": c3}

    def output_strides(self) -> dict[str, int]:
        return {name: int(name[1:]) for name in self.output_channels()}

    # --- forward -----------------------------------------------------------------------------------

    def check_input(self, x: torch.Tensor) -> None:
        """Raise unless ``x`` is ``(B, C, H, W)`` with H and W multiples of the stage-3 stride."""
        if x.dim() != 4 or x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ValueError(
                f"ConvViT needs (B, C, H, W) images with H and W multiples of {self.patch_size} "
                f"(the stage-3 stride), got {tuple(x.shape)}"
            )

    def _run(self, module: nn.Module, *args) -> torch.Tensor:
        if self.use_act_checkpoint and self.training:
            return torch.utils.checkpoint.checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def forward_conv_stages(self, x: torch.Tensor, visible1: Visibility = None,
                            visible2: Visibility = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Stages 1 and 2 on images ``(B, C, H, W)``; ``visible1`` / ``visible2`` mask their depthwise
        convs (see :meth:`CBlock.forward`) at strides 4 and 8.

        Returns:
            ``(B, C1, H/4, W/4)`` and ``(B, C2, H/8, W/8)``.
        """
        x = self.patch_embed1(x)
        for blk in self.blocks1:
            x = self._run(blk, x, visible1)
        s1 = x
        x = self.patch_embed2(x)
        for blk in self.blocks2:
            x = self._run(blk, x, visible2)
        return s1, x

    def stage3_tokens(self, s2: torch.Tensor) -> torch.Tensor:
        """Stage-2 map ``(B, C2, H/8, W/8)`` -> stage-3 tokens ``(B, H/16, W/16, C3)`` with positions."""
        x = self.patch_embed4(self.patch_embed3(s2).permute(0, 2, 3, 1))
        if self.pos_embed is not None:
            x = x + get_abs_pos(self.pos_embed, False, (x.shape[1], x.shape[2]))
        return x

    def run_block(self, i: int, x: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
        """Stage-3 block ``i`` on ``(B, H, W, C)`` tokens."""
        return self._run(self.blocks3[i], x, attn_bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args:
            x: images ``(B, C, H, W)``, H and W multiples of 16 (of 32 for an exact stride-32 map).

        Returns:
            ``{"s4": (B, C1, H/4, W/4), "s8": (B, C2, H/8, W/8), "s16": (B, C3, H/16, W/16),
            "s32": (B, C3, H/32, W/32)}``; ``s32`` is a 2x2 max pool of ``s16``.
        """
        self.check_input(x)
        s1, s2 = self.forward_conv_stages(x)
        t = self.stage3_tokens(s2)
        window_bias = self.rel_pos_bias_window() if self.rel_pos_bias_window is not None else None
        global_bias = self.rel_pos_bias_global(t.shape[1:3]) if self.rel_pos_bias_global is not None else None
        for i, blk in enumerate(self.blocks3):
            t = self.run_block(i, t, window_bias if blk.window_size > 0 else global_bias)
        s3 = t.permute(0, 3, 1, 2)
        names = list(self.output_channels())
        return {names[0]: s1, names[1]: s2, names[2]: s3, names[3]: F.max_pool2d(s3, kernel_size=2, stride=2)}


# ConvMAE's released size (``convmae_convvit_base_patch16``): 2 + 2 + 11 blocks, 12 heads.
CONVVIT_PRESETS: dict[str, dict] = {
    "convvit_b": dict(embed_dims=(256, 384, 768), depths=(2, 2, 11), num_heads=12, mlp_ratios=(4.0, 4.0, 4.0),
                      patch_sizes=(4, 2, 2)),
}


def convvit_preset(arch: str, **overrides) -> dict:
    """Keyword arguments of :class:`ConvViT` for a named size; ``overrides`` replace any of them."""
    if arch not in CONVVIT_PRESETS:
        raise ValueError(f"unknown ConvViT preset {arch!r}; choose from {sorted(CONVVIT_PRESETS)}")
    return {**CONVVIT_PRESETS[arch], **overrides}


def build_convvit(arch: str = "convvit_b", **overrides) -> ConvViT:
    """A :class:`ConvViT` from a preset name (a LazyConfig target: ``L(build_convvit)(arch="convvit_b")``)."""
    return ConvViT(**convvit_preset(arch, **overrides))
