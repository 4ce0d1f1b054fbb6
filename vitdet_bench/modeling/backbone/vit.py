"""Plain Vision Transformer for detection: window attention with a few global blocks.

The backbone of "Benchmarking Detection Transfer Learning with Vision Transformers" (Li et al.,
2021) and ViTDet (Li et al., 2022). Tokens stay ``(B, H, W, C)`` throughout; most blocks attend
within non-overlapping windows (``window_block_indexes``) and the others attend globally (the
papers place 4, evenly spaced). Parameter names follow timm (``patch_embed.proj``,
``blocks.N.attn.qkv``, ``mlp.fc1``) so pre-training checkpoints load without renames.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint
from timm.layers import DropPath, LayerScale, Mlp, PatchEmbed, trunc_normal_

from .rel_pos import RelativePositionBias, relative_position_bias, table_side
from .utils import (
    attention_dtype,
    decomposed_rel_pos_bias,
    get_abs_pos,
    sdpa_attn_bias,
    window_partition,
    window_unpartition,
)

__all__ = [
    "Attention",
    "Block",
    "TransformerTrainingFacts",
    "VIT_PRESETS",
    "ViT",
    "build_vit",
    "global_block_indexes",
    "init_vit_weights",
    "position_no_weight_decay",
    "vit_preset",
    "window_block_indexes",
]


class Attention(nn.Module):
    """Multi-head self-attention over a ``(B, H, W, C)`` token map.

    Relative position comes in the two published forms: decomposed (MViTv2 / ViTDet,
    ``use_rel_pos``) or a BEiT-style bias table, either owned by this block
    (``rel_pos_table_window``) or passed in by the ViT when the table is shared across blocks.
    Biases and masks are handed to ``F.scaled_dot_product_attention`` as its additive mask, in the
    layout its fused kernels take (:func:`~.utils.sdpa_attn_bias`): on CUDA the memory-efficient
    (or cuDNN) kernel then serves biased window and global attention, and flash attention the
    unbiased case; on the CPU the fused kernel serves both unless the bias needs a gradient
    (training with learned relative positions), where PyTorch falls back to the math kernel.

    Args:
        dim: channels.
        num_heads: attention heads.
        qkv_bias: one bias on the fused qkv projection (ViT, MAE, MoCo v3, DeiT).
        qv_bias: BEiT's separate ``q_bias`` and ``v_bias`` and no key bias (overrides ``qkv_bias``).
        use_rel_pos: add decomposed relative position biases.
        input_size: the token grid ``(H, W)`` this attention sees; sizes the rel-pos tables.
        rel_pos_table_window: own a BEiT-style table for this window (per-block tables).
        use_sdpa: use ``F.scaled_dot_product_attention`` (else the explicit softmax path, kept for
            tests).
        capture_logits: compute attention explicitly and keep the pre-softmax logits
            ``q k^T * scale + biases`` of the last forward for :meth:`pop_logits` (attention-map
            distillation, MAE-Lite). Fused kernels never materialise them, so only the blocks that
            are distilled should set it; it can be switched at run time.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        qv_bias: bool = False,
        use_rel_pos: bool = False,
        input_size: tuple[int, int] | None = None,
        rel_pos_table_window: tuple[int, int] | None = None,
        use_sdpa: bool = True,
        capture_logits: bool = False,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias and not qv_bias)
        if qv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        self.use_sdpa = use_sdpa
        self.capture_logits = capture_logits
        self.logits: torch.Tensor | None = None
        if use_rel_pos:
            if input_size is None:
                raise ValueError("use_rel_pos needs input_size to size the relative position tables")
            # Zero-initialised as in ViTDet (rel_pos_zero_init=True).
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, self.head_dim))
        self.rel_pos_table_window = tuple(rel_pos_table_window) if rel_pos_table_window else None
        if self.rel_pos_table_window:
            rows, cols = table_side(self.rel_pos_table_window)
            # BEiT's per-layer name, so fine-tuned BEiT checkpoints load as they are.
            self.relative_position_bias_table = nn.Parameter(torch.zeros(rows * cols, num_heads))

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            x: ``(B, H, W, C)``.
            attn_bias: additive bias broadcastable to ``(B, heads, H*W, H*W)`` (a shared
                rel-pos table's bias, a padding mask).

        Returns:
            ``(B, H, W, C)``.
        """
        b, h, w, _ = x.shape
        if self.q_bias is not None:
            qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))
            qkv = F.linear(x, self.qkv.weight, qkv_bias)
        else:
            qkv = self.qkv(x)
        # (3, B, heads, H * W, head_dim)
        q, k, v = qkv.reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        bias = attn_bias
        if self.use_rel_pos:
            rel = decomposed_rel_pos_bias(
                q.reshape(b * self.num_heads, h * w, -1), self.rel_pos_h, self.rel_pos_w, (h, w), (h, w)
            ).view(b, self.num_heads, h * w, h * w)
            bias = rel if bias is None else bias + rel
        if self.rel_pos_table_window:
            rel = relative_position_bias(self.relative_position_bias_table, self.rel_pos_table_window, (h, w))
            bias = rel if bias is None else bias + rel
        if bias is not None:
            bias = sdpa_attn_bias(bias, q.dtype)
        if self.use_sdpa and not self.capture_logits:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            if bias is not None:
                attn = attn + bias
            if self.capture_logits:
                self.logits = attn
            out = attn.softmax(dim=-1) @ v
        out = out.transpose(1, 2).reshape(b, h, w, -1)
        return self.proj(out)

    def pop_logits(self) -> torch.Tensor:
        """The pre-softmax logits ``(B, heads, H*W, H*W)`` of the last forward (per window in a
        window block: ``(B * num_windows, heads, S*S, S*S)``), released from the module."""
        if self.logits is None:
            raise RuntimeError("no attention logits were captured: set capture_logits=True and run a forward first")
        logits, self.logits = self.logits, None
        return logits


def _padding_mask(hw: tuple[int, int], pad_hw: tuple[int, int], window_size: int, batch: int,
                  device: torch.device) -> torch.Tensor:
    """Additive ``(B * num_windows, 1, 1, S*S)`` mask: -inf on the zero-padding keys of each window.

    Padding is bottom/right and shorter than a window, so every window keeps a real token and no
    attention row is fully masked.
    """
    valid = torch.zeros(1, pad_hw[0], pad_hw[1], 1, device=device)
    valid[:, : hw[0], : hw[1]] = 1.0
    windows, _ = window_partition(valid, window_size)
    keep = windows.reshape(-1, window_size * window_size).repeat(batch, 1)
    mask = torch.zeros_like(keep).masked_fill(keep == 0, float("-inf"))
    return mask[:, None, None, :]


class Block(nn.Module):
    """Pre-norm transformer block; window attention when ``window_size > 0``.

    Args:
        dim: channels.
        num_heads: attention heads.
        mlp_ratio: MLP hidden size over ``dim``.
        qkv_bias: bias in the qkv projection.
        qv_bias: BEiT's q / v biases.
        drop_path: stochastic depth rate of this block.
        norm_layer: normalization layer factory.
        act_layer: MLP activation.
        use_rel_pos: decomposed relative position.
        rel_pos_table: own a BEiT-style bias table (per-block tables).
        window_size: window side in tokens; 0 means global attention.
        input_size: the full token grid ``(H, W)`` (global blocks size their rel-pos tables by it).
        init_values: layer scale init (BEiT: 0.1); ``None`` disables layer scale.
        mask_window_padding: keep zero-padding tokens out of window attention (Detectron2 lets
            them attend).
        use_sdpa: fused attention kernel.
        capture_logits: keep this block's pre-softmax attention logits (see :class:`Attention`).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qv_bias: bool = False,
        drop_path: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        act_layer: type[nn.Module] = nn.GELU,
        use_rel_pos: bool = False,
        rel_pos_table: bool = False,
        window_size: int = 0,
        input_size: tuple[int, int] | None = None,
        init_values: float | None = None,
        mask_window_padding: bool = False,
        use_sdpa: bool = True,
        capture_logits: bool = False,
    ) -> None:
        super().__init__()
        attn_size = tuple(input_size) if window_size == 0 and input_size else (window_size, window_size)
        self.norm1 = norm_layer(dim)
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            qv_bias=qv_bias,
            use_rel_pos=use_rel_pos,
            input_size=attn_size,
            rel_pos_table_window=attn_size if rel_pos_table else None,
            use_sdpa=use_sdpa,
            capture_logits=capture_logits,
        )
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.window_size = window_size
        self.mask_window_padding = mask_window_padding

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, H, W, C)`` -> ``(B, H, W, C)``; ``attn_bias`` is a shared rel-pos bias."""
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            h, w = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)
            if self.mask_window_padding and pad_hw != (h, w):
                mask = _padding_mask((h, w), pad_hw, self.window_size, shortcut.shape[0], x.device)
                attn_bias = mask if attn_bias is None else attn_bias + mask
            x = self.attn(x, attn_bias)
            x = window_unpartition(x, self.window_size, pad_hw, (h, w))
        else:
            x = self.attn(x, attn_bias)
        x = shortcut + self.drop_path(self.ls1(x))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


REL_POS_BIAS = (None, "shared", "per_block")


def init_vit_weights(m: nn.Module) -> None:
    """timm's ViT initialisation of one module (``model.apply``): trunc-normal(0.02) Linear weights,
    zero biases, unit LayerNorms; other layers keep PyTorch's defaults. ViT and ConvViT use it."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def position_no_weight_decay(module: nn.Module) -> set[str]:
    """Names (relative to ``module``) of its position parameters, which take no weight decay: the
    absolute table and every relative-position table (ViT and ConvViT)."""
    names = {"pos_embed"} if getattr(module, "pos_embed", None) is not None else set()
    for n, _ in module.named_parameters():
        if n.endswith(("rel_pos_h", "rel_pos_w", "relative_position_bias_table")):
            names.add(n)
    return names


class TransformerTrainingFacts:
    """What initialisation and the optimizer's parameter groups ask of a ViT-style backbone (ViT
    and ConvViT): timm's init for its modules, its depth for layer-wise lr decay (``num_layers``;
    each class says how its parameters map to layers in ``layer_id``), and the position parameters
    that take no weight decay."""

    depth: int
    _init_weights = staticmethod(init_vit_weights)

    @property
    def num_layers(self) -> int:
        """Depth as layer-wise lr decay counts it (ConvViT: its stage-3 blocks, as ConvMAE's ``lr_decay.py``)."""
        return self.depth

    def no_weight_decay(self) -> set[str]:
        """Parameter names (relative to this module) that take no weight decay."""
        return position_no_weight_decay(self)


class ViT(TransformerTrainingFacts, nn.Module):
    """Plain ViT backbone for detection (Detectron2's ``ViT`` arguments, plus BEiT's options).

    Args:
        img_size: detection input size (square), e.g. 1024; sizes the global blocks' rel-pos.
        patch_size: patch side.
        in_chans: input channels.
        embed_dim: token channels.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden size over ``embed_dim``.
        qkv_bias: bias in qkv projections.
        drop_path_rate: stochastic depth, rising linearly from 0 to this at the last block.
        norm_layer: normalization factory (LayerNorm, eps 1e-6 by default).
        act_layer: MLP activation.
        use_abs_pos: add the (interpolated) pre-training absolute position table.
        use_rel_pos: decomposed relative position in every block (ViTDet).
        window_size: window side for window blocks.
        window_block_indexes: blocks that use window attention; the others are global.
        use_act_checkpoint: recompute each block in the backward pass (non-reentrant, DDP-safe).
        pretrain_img_size: image size the position table was trained at (sizes ``pos_embed``).
        pretrain_use_cls_token: ``pos_embed`` has a leading cls slot (dropped when used).
        out_feature: name of the last block's output.
        out_block_indexes: blocks whose outputs are also returned, as ``"block{i}"`` (the
            multi-scale adapter taps the global blocks).
        rel_pos_bias: BEiT-style bias tables: ``"shared"`` (one table for all window blocks and one
            for all global blocks, as the benchmarking paper), ``"per_block"`` or ``None``.
        rel_pos_cls_token: the shared global table keeps BEiT's 3 cls rows (pre-training with a cls
            token, see :class:`~vitdet_bench.pretrain.PretrainEncoder`); this ViT's own forward has
            no cls token and uses only the offset rows.
        qv_bias: BEiT's separate q / v biases instead of one qkv bias.
        init_values: layer scale init (0.1 for BEiT); ``None`` for none.
        mask_window_padding: keep the zero-padding tokens out of window attention.
        freeze_patch_embed: keep the patch projection fixed (MoCo v3's frozen random projection).
        use_sdpa: fused attention kernels.
        attn_logits_blocks: blocks whose pre-softmax attention logits are kept for
            :meth:`pop_attn_logits` (MAE-Lite's attention distillation); only these blocks leave
            the fused kernel (and activation checkpointing). :meth:`capture_attn_logits` changes
            the set at run time.
    """

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = partial(nn.LayerNorm, eps=1e-6),
        act_layer: type[nn.Module] = nn.GELU,
        use_abs_pos: bool = True,
        use_rel_pos: bool = False,
        window_size: int = 0,
        window_block_indexes: Sequence[int] = (),
        use_act_checkpoint: bool = False,
        pretrain_img_size: int = 224,
        pretrain_use_cls_token: bool = True,
        out_feature: str = "last_feat",
        out_block_indexes: Sequence[int] = (),
        rel_pos_bias: str | None = None,
        rel_pos_cls_token: bool = False,
        qv_bias: bool = False,
        init_values: float | None = None,
        mask_window_padding: bool = False,
        freeze_patch_embed: bool = False,
        use_sdpa: bool = True,
        attn_logits_blocks: Sequence[int] = (),
    ) -> None:
        super().__init__()
        for i in list(window_block_indexes) + list(out_block_indexes):
            if not 0 <= i < depth:
                raise ValueError(f"block index {i} is out of range for depth {depth}")
        if window_block_indexes and window_size <= 0:
            raise ValueError("window_block_indexes are given but window_size is not positive")
        if rel_pos_bias not in REL_POS_BIAS:
            raise ValueError(f"rel_pos_bias must be one of {REL_POS_BIAS}, got {rel_pos_bias!r}")
        if rel_pos_cls_token and (rel_pos_bias != "shared" or len(window_block_indexes) == depth):
            raise ValueError(
                "rel_pos_cls_token needs rel_pos_bias='shared' and a global block (its table holds the cls rows)"
            )
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.use_act_checkpoint = use_act_checkpoint
        self.out_feature = out_feature
        self.out_block_indexes = tuple(out_block_indexes)
        self.window_block_indexes = tuple(window_block_indexes)
        self.rel_pos_bias_mode = rel_pos_bias
        # Detection inputs vary in size (LSJ crops, padding), so the patch embed must not insist
        # on its nominal image size.
        self.patch_embed = PatchEmbed(
            img_size=None,
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            flatten=False,
            output_fmt="NHWC",
            strict_img_size=False,
        )
        if use_abs_pos:
            num_patches = (pretrain_img_size // patch_size) ** 2
            num_positions = num_patches + 1 if pretrain_use_cls_token else num_patches
            self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
            trunc_normal_(self.pos_embed, std=0.02)
        else:
            self.pos_embed = None
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        grid = (img_size // patch_size, img_size // patch_size)
        self.blocks = nn.ModuleList(
            Block(
                dim=embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qv_bias=qv_bias,
                drop_path=dpr[i],
                norm_layer=norm_layer,
                act_layer=act_layer,
                use_rel_pos=use_rel_pos,
                rel_pos_table=rel_pos_bias == "per_block",
                window_size=window_size if i in window_block_indexes else 0,
                input_size=grid,
                init_values=init_values,
                mask_window_padding=mask_window_padding,
                use_sdpa=use_sdpa,
            )
            for i in range(depth)
        )
        # BENCH shares one table among the window blocks and another among the global blocks.
        self.rel_pos_bias_window = self.rel_pos_bias_global = None
        if rel_pos_bias == "shared":
            if window_block_indexes:
                self.rel_pos_bias_window = RelativePositionBias((window_size, window_size), num_heads)
            if len(window_block_indexes) < depth:
                self.rel_pos_bias_global = RelativePositionBias(grid, num_heads, cls_token=rel_pos_cls_token)
        self.apply(self._init_weights)
        if freeze_patch_embed:
            self.patch_embed.requires_grad_(False)
        self.capture_attn_logits(attn_logits_blocks)

    def _block_index(self, i: int) -> int:
        if not -self.depth <= i < self.depth:
            raise ValueError(f"block index {i} is out of range for depth {self.depth}")
        return i % self.depth

    def capture_attn_logits(self, indices: Sequence[int]) -> None:
        """Keep the pre-softmax attention logits of exactly these blocks (negative indexes count
        from the last block); every other block uses the fused kernel again."""
        wanted = {self._block_index(i) for i in indices}
        for i, blk in enumerate(self.blocks):
            blk.attn.capture_logits = i in wanted
            blk.attn.logits = None

    def pop_attn_logits(self, i: int) -> torch.Tensor:
        """Block ``i``'s attention logits ``q k^T * scale + biases`` from the last forward
        (``(B, heads, N, N)``; see :meth:`Attention.pop_logits`)."""
        return self.blocks[self._block_index(i)].attn.pop_logits()


    def layer_id(self, name: str) -> int:
        """Layer index of a parameter for layer-wise lr decay: embeddings 0, block i -> i + 1."""
        if name.startswith(("pos_embed", "patch_embed")):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return self.depth + 1

    def run_block(self, i: int, x: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
        """Block ``i`` on ``(B, H, W, C)`` tokens, recomputed in backward when ``use_act_checkpoint``
        (except a block that captures its attention logits: they are an output of the forward)."""
        if self.use_act_checkpoint and self.training and not self.blocks[i].attn.capture_logits:
            return torch.utils.checkpoint.checkpoint(self.blocks[i], x, attn_bias, use_reentrant=False)
        return self.blocks[i](x, attn_bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args:
            x: images ``(B, C, H, W)``; H and W multiples of the patch size.

        Returns:
            ``{out_feature: (B, embed_dim, H/p, W/p)}`` plus ``"block{i}"`` for each tapped block.
        """
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ValueError(
                f"input size {tuple(x.shape[-2:])} is not a multiple of the patch size {self.patch_size}"
            )
        x = self.patch_embed(x)
        hw = (x.shape[1], x.shape[2])
        if self.pos_embed is not None:
            x = x + get_abs_pos(self.pos_embed, self.pretrain_use_cls_token, hw)
        # Shared tables: one bias per forward pass, converted once for every block that uses it.
        window_bias = global_bias = None
        if self.rel_pos_bias_window is not None:
            window_bias = sdpa_attn_bias(self.rel_pos_bias_window(), attention_dtype(x))
        if self.rel_pos_bias_global is not None:
            global_bias = sdpa_attn_bias(self.rel_pos_bias_global(hw), attention_dtype(x))
        outputs = {}
        for i, blk in enumerate(self.blocks):
            x = self.run_block(i, x, window_bias if blk.window_size > 0 else global_bias)
            if i in self.out_block_indexes:
                outputs[f"block{i}"] = x.permute(0, 3, 1, 2)
        outputs[self.out_feature] = x.permute(0, 3, 1, 2)
        return outputs

    def output_channels(self) -> dict[str, int]:
        names = [f"block{i}" for i in self.out_block_indexes] + [self.out_feature]
        return {n: self.embed_dim for n in names}

    def output_strides(self) -> dict[str, int]:
        return {n: self.patch_size for n in self.output_channels()}


def global_block_indexes(depth: int, num_global: int = 4) -> list[int]:
    """The last block of each of ``num_global`` equal parts: B 2,5,8,11; L 5,11,17,23; H 7,15,23,31."""
    if not 0 < num_global <= depth:
        raise ValueError(f"num_global must be in [1, depth={depth}], got {num_global}")
    return [(i + 1) * depth // num_global - 1 for i in range(num_global)]


def window_block_indexes(depth: int, num_global: int = 4) -> list[int]:
    """Every block that is not one of :func:`global_block_indexes`."""
    global_ = set(global_block_indexes(depth, num_global))
    return [i for i in range(depth) if i not in global_]


# Widths / depths / heads of the ViT family (Dosovitskiy et al.; DeiT for T and S). The detector's
# window equals the pre-training grid (224 / patch), as the benchmarking paper sets it.
VIT_PRESETS: dict[str, dict] = {
    "vit_t": dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "vit_s": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_b": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_l": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    "vit_h": dict(patch_size=16, embed_dim=1280, depth=32, num_heads=16),
    "vit_h14": dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16),
}


def vit_preset(arch: str, num_global: int = 4, pretrain_img_size: int = 224, **overrides) -> dict:
    """Keyword arguments of :class:`ViT` for a named size with the paper's attention layout.

    Window attention everywhere except ``num_global`` evenly spaced global blocks (B: 2, 5, 8, 11;
    L: 5, 11, 17, 23; H: 7, 15, 23, 31), window side = pre-training grid (14 for patch 16), and the
    global blocks tapped for the multi-scale adapter. ``overrides`` replace any of them; the window
    follows the patch size actually used (``patch_size=14`` at 224 px: window 16), unless
    ``window_size`` is given.
    """
    if arch not in VIT_PRESETS:
        raise ValueError(f"unknown ViT preset {arch!r}; choose from {sorted(VIT_PRESETS)}")
    kwargs = dict(VIT_PRESETS[arch])
    depth = overrides.get("depth", kwargs["depth"])
    patch_size = overrides.get("patch_size", kwargs["patch_size"])
    kwargs.update(
        window_size=pretrain_img_size // patch_size,
        window_block_indexes=window_block_indexes(depth, num_global),
        out_block_indexes=global_block_indexes(depth, num_global),
        pretrain_img_size=pretrain_img_size,
    )
    kwargs.update(overrides)
    return kwargs


def build_vit(arch: str = "vit_b", num_global: int = 4, **overrides) -> ViT:
    """A :class:`ViT` from a preset name (a LazyConfig target: ``L(build_vit)(arch="vit_l")``)."""
    return ViT(**vit_preset(arch, num_global=num_global, **overrides))
