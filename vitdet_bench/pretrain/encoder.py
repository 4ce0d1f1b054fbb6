"""The detection ViT run as a pre-training encoder: token sequences, a cls token and a final norm.

Pre-training and detection share one :class:`~vitdet_bench.modeling.ViT` class, so the encoder's
weights are already named as the detector names them (``patch_embed.proj``, ``pos_embed``,
``blocks.N.*``, shared bias tables): exporting is a copy, and loading reports nothing missing
that the method should have trained. Here every block attends globally over the pre-training
grid; what pre-training adds around the ViT (cls token, final norm) lives in this wrapper and is
not exported, as the detector has neither. A shared bias table (BEiT) keeps its 3 cls rows here,
learned as BEiT learns them, and is exported with them in BEiT's layout; the detector's loader
drops them and says so.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from timm.layers import build_sincos2d_pos_embed, trunc_normal_

from ..modeling.backbone.vit import VIT_PRESETS, ViT

__all__ = ["PretrainEncoder", "build_pretrain_encoder", "sincos_pos_embed"]


def sincos_pos_embed(grid: int, dim: int, cls_token: bool = True) -> torch.Tensor:
    """Fixed 2-D sin-cos position table ``(1, [1 +] grid*grid, dim)`` with a zero cls row (MAE, MoCo v3).

    timm's ``build_sincos2d_pos_embed`` has MAE's frequencies; its channel order differs from
    MAE's (the detector resizes the table and fine-tunes it, so the order does not matter).
    """
    table = build_sincos2d_pos_embed([grid, grid], dim=dim)
    if cls_token:
        table = torch.cat((torch.zeros(1, dim), table), dim=0)
    return table.unsqueeze(0)


class PretrainEncoder(nn.Module):
    """A :class:`ViT` (all blocks global) applied to token sequences, with cls token and final norm.

    Args:
        vit: the ViT whose weights are exported (its ``window_block_indexes`` must be empty).
        cls_token: prepend a learned cls token (its position is ``pos_embed``'s first row).
        pos_embed: "learned" (trunc-normal 0.02), "sincos" (fixed, MAE / MoCo v3) or "none"
            (BEiT, which relies on relative position bias; ``vit.pos_embed`` must be ``None``).
        img_size: the pre-training input size (recorded in exports).
        arch: the preset name, if any (recorded in exports).
    """

    def __init__(self, vit: ViT, cls_token: bool = True, pos_embed: str = "learned", img_size: int = 224,
                 arch: str = "") -> None:
        super().__init__()
        self.img_size = img_size
        self.arch = arch
        if vit.window_block_indexes:
            raise ValueError("pre-training runs every block globally: build the ViT with window_block_indexes=()")
        if pos_embed not in ("learned", "sincos", "none"):
            raise ValueError(f"pos_embed must be 'learned', 'sincos' or 'none', got {pos_embed!r}")
        if (pos_embed == "none") != (vit.pos_embed is None):
            raise ValueError(f"pos_embed={pos_embed!r} but the ViT was built with "
                             f"use_abs_pos={vit.pos_embed is not None}")
        if vit.pos_embed is not None and vit.pretrain_use_cls_token != cls_token:
            raise ValueError("the ViT's pretrain_use_cls_token must equal cls_token (pos_embed has the cls slot)")
        table = vit.rel_pos_bias_global
        if table is not None and table.cls_token != cls_token:
            raise ValueError(
                f"cls_token={cls_token} but the ViT's shared bias table was built with "
                f"rel_pos_cls_token={table.cls_token}: a cls token attends with the table's 3 cls rows (BEiT), "
                "so both must agree"
            )
        self.vit = vit
        self.embed_dim = vit.embed_dim
        self.patch_size = vit.patch_size
        self.grid = vit.rel_pos_bias_global.window_size if vit.rel_pos_bias_global is not None else None
        if pos_embed == "sincos":
            grid = int((vit.pos_embed.shape[1] - int(cls_token)) ** 0.5)
            vit.pos_embed.data.copy_(sincos_pos_embed(grid, vit.embed_dim, cls_token))
            vit.pos_embed.requires_grad_(False)
        self.pos_embed_kind = pos_embed
        self.cls_token = nn.Parameter(torch.zeros(1, 1, vit.embed_dim)) if cls_token else None
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=0.02)
        self.norm = partial(nn.LayerNorm, eps=1e-6)(vit.embed_dim)

    @property
    def num_prefix_tokens(self) -> int:
        return 1 if self.cls_token is not None else 0

    def patch_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> patch tokens ``(B, N, D)`` without positions."""
        return self.vit.patch_embed(images).flatten(1, 2)

    def add_pos(self, tokens: torch.Tensor) -> torch.Tensor:
        """Add the patch rows of ``pos_embed`` to ``(B, N, D)`` patch tokens (no-op without one)."""
        if self.vit.pos_embed is None:
            return tokens
        return tokens + self.vit.pos_embed[:, self.num_prefix_tokens:]

    def prepend_cls(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.cls_token is None:
            return tokens
        cls = self.cls_token
        if self.vit.pos_embed is not None:
            cls = cls + self.vit.pos_embed[:, :1]
        return torch.cat((cls.expand(tokens.shape[0], -1, -1), tokens), dim=1)

    def _attn_bias(self, num_tokens: int) -> torch.Tensor | None:
        """The shared BEiT table's ``(heads, L, L)`` bias for the full grid, with the cls token's
        row and column from the table's 3 learned cls rows (BEiT's ``RelativePositionBias``)."""
        table = self.vit.rel_pos_bias_global
        if table is None:
            return None
        n = self.grid[0] * self.grid[1]
        if num_tokens - self.num_prefix_tokens != n:
            raise ValueError(f"relative position bias needs the full {n}-token grid, got "
                             f"{num_tokens - self.num_prefix_tokens} tokens")
        return table(with_cls=self.cls_token is not None)

    def forward_blocks(self, tokens: torch.Tensor) -> torch.Tensor:
        """Run every block over ``(B, L, D)`` tokens (cls first, if any) and the final norm."""
        bias = self._attn_bias(tokens.shape[1])
        x = tokens.unsqueeze(1)  # the ViT's blocks take (B, H, W, D); a sequence is a 1 x L map
        for i in range(len(self.vit.blocks)):
            x = self.vit.run_block(i, x, bias)
        return self.norm(x.squeeze(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """All tokens of ``images`` through the encoder: ``(B, [1 +] N, D)`` after the final norm."""
        return self.forward_blocks(self.prepend_cls(self.add_pos(self.patch_tokens(images))))

    def export_state(self) -> dict[str, torch.Tensor]:
        """The ViT's weights in the detector's names. A shared bias table goes out under BEiT's
        shared name and layout (cls rows last), which the loader places into the detector's window
        and global tables (dropping the cls rows) or into another pre-training encoder (keeping them).
        The cls token and final norm go out too (as in MAE's released encoders): the detector's loader
        drops them, a frozen teacher built from the export (MAE-Lite, feature targets) uses them."""
        state = {}
        for k, v in self.vit.state_dict().items():
            if k == "rel_pos_bias_global.relative_position_bias_table":
                k = "rel_pos_bias.relative_position_bias_table"
            state[k] = v.detach().clone()
        if self.cls_token is not None:
            state["cls_token"] = self.cls_token.detach().clone()
        state.update({f"norm.{k}": v.detach().clone() for k, v in self.norm.state_dict().items()})
        return state


def build_pretrain_encoder(
    arch: str = "vit_b",
    img_size: int = 224,
    cls_token: bool = True,
    pos_embed: str = "learned",
    **overrides,
) -> PretrainEncoder:
    """A :class:`PretrainEncoder` for a preset (``vit_t`` … ``vit_h``), all blocks global.

    ``overrides`` go to :class:`ViT` (``depth``, ``embed_dim``, ``num_heads``, ``rel_pos_bias="shared"``,
    ``qv_bias``, ``init_values``, ``freeze_patch_embed``, ``drop_path_rate``, ``use_act_checkpoint`` …).
    """
    if arch not in VIT_PRESETS:
        raise ValueError(f"unknown ViT preset {arch!r}; choose from {sorted(VIT_PRESETS)}")
    kwargs = dict(VIT_PRESETS[arch])
    kwargs.update(
        img_size=img_size,
        pretrain_img_size=img_size,
        pretrain_use_cls_token=cls_token,
        use_abs_pos=pos_embed != "none",
        window_block_indexes=(),
    )
    kwargs.update(overrides)
    if any(kwargs[k] != VIT_PRESETS[arch][k] for k in ("embed_dim", "depth", "num_heads", "patch_size")):
        dims = "x".join(str(kwargs[k]) for k in ("embed_dim", "depth", "num_heads"))
        arch = f"custom (width x depth x heads {dims}, from {arch})"
    if kwargs.get("rel_pos_bias") == "per_block":
        raise ValueError("pre-training supports rel_pos_bias=None or 'shared' (BEiT's pre-training table)")
    if kwargs.get("rel_pos_bias") == "shared":
        kwargs.setdefault("rel_pos_cls_token", cls_token)  # BEiT: the shared table has the cls rows
    return PretrainEncoder(ViT(**kwargs), cls_token=cls_token, pos_embed=pos_embed, img_size=img_size, arch=arch)
