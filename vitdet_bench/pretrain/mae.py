"""MAE (He et al., 2021): mask 75% of the patches, encode the visible ones, reconstruct the rest.

Follows ``models_mae.py``: per-sample random masking, an encoder that sees only visible tokens
(plus the cls token), a narrow decoder with its own fixed sin-cos positions that fills in mask
tokens, and a pixel loss averaged over the removed patches (optionally on per-patch normalised
targets, ``norm_pix_loss``).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block as TimmBlock

from .common import PretrainModel, stack_images
from .encoder import PretrainEncoder, sincos_pos_embed
from .masking import random_masking

__all__ = ["MAE", "add_mae_decoder", "init_mae_weights", "patchify", "mae_loss"]


def add_mae_decoder(model: nn.Module, embed_dim: int, decoder_dim: int, decoder_depth: int, decoder_num_heads: int,
                    patch_size: int, grid: int, cls_token: bool) -> None:
    """MAE's decoder as attributes of ``model``, under MAE's checkpoint names: ``decoder_embed``,
    ``mask_token``, the fixed sin-cos ``decoder_pos_embed`` (``grid`` x ``grid``, a cls slot with
    ``cls_token``), ``decoder_blocks`` (timm's Block, as MAE: the decoder is thrown away after
    pre-training), ``decoder_norm`` and ``decoder_pred`` (pixels of one patch). MAE and ConvMAE share it."""
    model.decoder_embed = nn.Linear(embed_dim, decoder_dim)
    model.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
    model.register_buffer("decoder_pos_embed", sincos_pos_embed(grid, decoder_dim, cls_token))
    model.decoder_blocks = nn.ModuleList(
        TimmBlock(decoder_dim, decoder_num_heads, mlp_ratio=4.0, qkv_bias=True,
                  norm_layer=partial(nn.LayerNorm, eps=1e-6))
        for _ in range(decoder_depth)
    )
    model.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
    model.decoder_pred = nn.Linear(decoder_dim, patch_size * patch_size * 3)


def init_mae_weights(model: nn.Module, patch_kernel: torch.Tensor) -> None:
    """MAE's initialisation (ConvMAE's too): xavier-uniform Linear layers and patch kernel (as a
    Linear), unit LayerNorms, normal(0.02) mask token; other layers keep PyTorch's defaults."""
    nn.init.xavier_uniform_(patch_kernel.data.view(patch_kernel.shape[0], -1))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    trunc_normal_(model.mask_token, std=0.02)


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, 3, H, W)`` -> ``(B, N, p*p*3)``, channel-last inside each patch (MAE's layout)."""
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {(h, w)} is not a multiple of the patch size {p}")
    x = images.reshape(b, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)


def mae_loss(target: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, norm_pix_loss: bool = True) -> torch.Tensor:
    """Mean squared error per patch, averaged over the removed patches only.

    Args:
        target: patchified images ``(B, N, p*p*3)``.
        pred: the decoder's prediction, same shape.
        mask: ``(B, N)``, 1 on removed patches.
        norm_pix_loss: standardise each target patch by its own mean and (unbiased) variance.
    """
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        centred = target - mean
        # The unbiased variance (MAE's target.var), as a norm: torch's CPU var kernel took 50 ms for a
        # demo batch (64 x 64 x 768), this 3 ms; equal to 1e-6.
        var = torch.linalg.vector_norm(centred, dim=-1, keepdim=True).pow(2) / (target.shape[-1] - 1)
        target = centred / (var + 1e-6) ** 0.5
    loss = ((pred - target) ** 2).mean(dim=-1)
    return (loss * mask).sum() / mask.sum()


class MAE(PretrainModel):
    """Masked autoencoder around a :class:`PretrainEncoder`.

    Args:
        encoder: the ViT encoder (cls token, fixed sin-cos ``pos_embed`` as MAE).
        decoder_dim: decoder width (MAE: 512).
        decoder_depth: decoder blocks (MAE: 8).
        decoder_num_heads: decoder heads (MAE: 16).
        mask_ratio: fraction of patches removed (MAE: 0.75).
        norm_pix_loss: per-patch normalised pixel targets (MAE's released weights use it).
    """

    method = "mae"
    label = "MAE"

    def __init__(
        self,
        encoder: PretrainEncoder,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(encoder, **kwargs)
        if encoder.vit.pos_embed is None or encoder.vit.rel_pos_bias_global is not None:
            raise ValueError("MAE's encoder sees a random subset of tokens: it needs absolute positions and no bias "
                             "table")
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        p, dim = encoder.patch_size, encoder.embed_dim
        num_patches = encoder.vit.pos_embed.shape[1] - encoder.num_prefix_tokens
        self.grid = int(num_patches**0.5)
        add_mae_decoder(self, dim, decoder_dim, decoder_depth, decoder_num_heads, p, self.grid,
                        encoder.num_prefix_tokens > 0)
        self._init_weights()

    def _init_weights(self) -> None:
        # MAE: xavier-uniform Linear layers and patch kernel (as a Linear), normal(0.02) tokens.
        init_mae_weights(self, self.encoder.vit.patch_embed.proj.weight)
        if self.encoder.cls_token is not None:
            trunc_normal_(self.encoder.cls_token, std=0.02)

    def forward_encoder(self, images: torch.Tensor, noise: torch.Tensor | None = None):
        enc = self.encoder
        x = enc.add_pos(enc.patch_tokens(images))
        x, mask, ids_restore = random_masking(x, self.mask_ratio, noise)
        return enc.forward_blocks(enc.prepend_cls(x)), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(latent)
        prefix = self.encoder.num_prefix_tokens
        n = ids_restore.shape[1]
        mask_tokens = self.mask_token.expand(x.shape[0], n + prefix - x.shape[1], -1)
        tokens = torch.cat((x[:, prefix:], mask_tokens), dim=1)
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = torch.cat((x[:, :prefix], tokens), dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, prefix:]

    def forward_loss_terms(self, images: torch.Tensor, noise: torch.Tensor | None = None):
        """``(loss, pred, mask)`` for normalised ``images`` (``noise`` fixes the mask)."""
        latent, mask, ids_restore = self.forward_encoder(images, noise)
        pred = self.forward_decoder(latent, ids_restore)
        loss = mae_loss(patchify(images, self.encoder.patch_size), pred, mask, self.norm_pix_loss)
        return loss, pred, mask

    def forward(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        loss, _, _ = self.forward_loss_terms(self.normalize(stack_images(batch, device=self.device)))
        return {"loss_mae": loss}

    def export_meta(self) -> dict:
        return {**super().export_meta(), "mask_ratio": self.mask_ratio, "norm_pix_loss": self.norm_pix_loss}
