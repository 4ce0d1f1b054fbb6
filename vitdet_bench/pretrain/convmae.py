"""ConvMAE (Gao et al., 2022, "Masked Convolution Meets Masked Autoencoders"): MAE on a ConvViT.

Follows ``models_convmae.py`` of Alpha-VL/ConvMAE:

1. MAE's per-sample random masking on the stage-3 grid (75%); the mask is upsampled by nearest
   neighbour to block-wise masks at strides 4 and 8 (each stage-3 patch covers a 4x4 block of
   stage-1 pixels and a 2x2 block of stage-2 pixels).
2. The conv stages run on the whole image with masked convolution: every depthwise conv sees the
   features multiplied by the visible mask, so nothing from a masked patch reaches a visible one.
3. Stage 3 (the ViT blocks, all global) runs on the visible tokens only.
4. The stage-1 and stage-2 outputs are projected to the stage-3 width (``stage1_output_decode``: a
   4x4 stride-4 conv, ``stage2_output_decode``: 2x2 stride-2), gathered at the visible positions and
   added to the stage-3 output before the final LayerNorm.
5. An MAE decoder (512 x 8 blocks, 16 heads, fixed sin-cos positions, no cls token) fills in mask
   tokens and predicts 16 x 16 x 3 pixels per patch; the loss is MAE's (norm-pix MSE on the masked
   patches).

The exported backbone is the :class:`~vitdet_bench.modeling.ConvViT` alone (the decodes, the final
norm and the decoder are pre-training parts), in the names ConvMAE's detector uses.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..modeling.backbone.convvit import CONVVIT_PRESETS, ConvViT, convvit_preset
from .common import PretrainModel, stack_images
from .encoder import sincos_pos_embed
from .mae import add_mae_decoder, init_mae_weights, mae_loss, patchify

__all__ = ["ConvMAE", "ConvMAEEncoder", "build_convmae_encoder", "upsample_visible", "visible_map"]


def visible_map(ids_keep: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """``(B, L)`` float map with 1 at the kept token indices ``ids_keep (B, L_keep)``, else 0."""
    vis = torch.zeros(ids_keep.shape[0], num_tokens, device=ids_keep.device)
    return vis.scatter(1, ids_keep, 1.0)


def upsample_visible(visible: torch.Tensor, grid: tuple[int, int], factor: int) -> torch.Tensor:
    """Block-wise mask for an earlier stage: ``(B, h*w)`` on the stage-3 grid -> ``(B, 1, h*f, w*f)``,
    each token's value repeated over its ``f x f`` block (nearest-neighbour upsampling)."""
    x = visible.reshape(visible.shape[0], 1, grid[0], grid[1])
    return x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


class ConvMAEEncoder(nn.Module):
    """A :class:`ConvViT` (all stage-3 blocks global) run on visible tokens, with ConvMAE's
    multi-scale fusion (``stage1_output_decode``, ``stage2_output_decode``) and final norm.

    Args:
        convvit: the backbone whose weights are exported (no windows, no relative position, with an
            absolute position table for the pre-training grid).
        img_size: the pre-training input size (recorded in exports).
        arch: the preset name (recorded in exports).
    """

    def __init__(self, convvit: ConvViT, img_size: int = 224, arch: str = "") -> None:
        super().__init__()
        if convvit.window_block_indexes or convvit.rel_pos_bias_mode is not None:
            raise ValueError("ConvMAE pre-training runs every stage-3 block globally without relative position: "
                             "build the ConvViT with window_block_indexes=() and rel_pos_bias=None")
        if convvit.pos_embed is None:
            raise ValueError("ConvMAE's encoder sees a random subset of tokens: the ConvViT needs use_abs_pos=True")
        if convvit.pretrain_img_size != img_size:
            raise ValueError(f"the ConvViT's pretrain_img_size {convvit.pretrain_img_size} != img_size {img_size}")
        self.convvit = convvit
        self.img_size = img_size
        self.arch = arch
        self.patch_size = convvit.patch_size
        self.embed_dim = convvit.embed_dim
        self.grid = (img_size // convvit.patch_size, img_size // convvit.patch_size)
        # Fixed 2-D sin-cos positions, as ConvMAE (the detector resizes and fine-tunes or freezes them).
        convvit.pos_embed.data.copy_(sincos_pos_embed(self.grid[0], convvit.embed_dim, cls_token=False))
        convvit.pos_embed.requires_grad_(False)
        c1, c2, c3 = convvit.embed_dims
        s1, s2, s3 = convvit.strides
        self.stage1_output_decode = nn.Conv2d(c1, c3, s3 // s1, stride=s3 // s1)
        self.stage2_output_decode = nn.Conv2d(c2, c3, s3 // s2, stride=s3 // s2)
        self.norm = nn.LayerNorm(c3, eps=1e-6)

    def grid_of(self, images: torch.Tensor) -> tuple[int, int]:
        """The stage-3 grid of ``images``; raises a clear error for sizes the model cannot take."""
        self.convvit.check_input(images)
        h, w = images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
        if (h, w) != self.grid:
            raise ValueError(f"pre-training images are {tuple(images.shape[-2:])}, the encoder was built for "
                             f"{self.img_size} px (a {self.grid[0]}x{self.grid[1]} grid)")
        return h, w

    def forward(self, images: torch.Tensor, ids_keep: list[torch.Tensor]) -> torch.Tensor:
        """Encode the visible tokens of one or more disjoint views.

        Args:
            images: normalised ``(B, 3, H, W)``.
            ids_keep: per view, the visible stage-3 token indices ``(B, L_keep)``. One view is
                ConvMAE; several disjoint views run the conv stages once with one depthwise conv
                per view (FastConvMAE).

        Returns:
            ``(V * B, L_keep, C3)``: view 0's batch first, then view 1's, ...
        """
        grid = self.grid_of(images)
        n = grid[0] * grid[1]
        vit = self.convvit
        s1, s2, s3 = vit.strides
        visible = [visible_map(ids, n) for ids in ids_keep]
        v1 = [upsample_visible(v, grid, s3 // s1) for v in visible]
        v2 = [upsample_visible(v, grid, s3 // s2) for v in visible]
        single = len(ids_keep) == 1
        f1, f2 = vit.forward_conv_stages(images, v1[0] if single else v1, v2[0] if single else v2)
        tokens = vit.stage3_tokens(f2).flatten(1, 2)  # (B, L, C3), positions added
        e1 = self.stage1_output_decode(f1).flatten(2).transpose(1, 2)
        e2 = self.stage2_output_decode(f2).flatten(2).transpose(1, 2)
        feats = torch.cat((tokens, e1, e2), dim=2)
        gathered = [torch.gather(feats, 1, ids.unsqueeze(-1).expand(-1, -1, feats.shape[2])) for ids in ids_keep]
        x, e1, e2 = torch.cat(gathered, dim=0).split(self.embed_dim, dim=2)
        x = x.unsqueeze(1)  # the ViT blocks take (B, H, W, C); a sequence is a 1 x L map
        for i in range(len(vit.blocks3)):
            x = vit.run_block(i, x, None)
        return self.norm(x.squeeze(1) + e1 + e2)

    def export_state(self) -> dict[str, torch.Tensor]:
        """The ConvViT's weights in the detector's names (the decodes and the norm stay behind)."""
        return {k: v.detach().clone() for k, v in self.convvit.state_dict().items()}


def build_convmae_encoder(arch: str = "convvit_b", img_size: int = 224, **overrides) -> ConvMAEEncoder:
    """A :class:`ConvMAEEncoder` for a preset (``convvit_b``); ``overrides`` go to :class:`ConvViT`
    (``embed_dims``, ``depths``, ``num_heads``, ``drop_path_rate``, ``use_act_checkpoint`` ...)."""
    if arch not in CONVVIT_PRESETS:
        raise ValueError(f"unknown ConvViT preset {arch!r}; choose from {sorted(CONVVIT_PRESETS)}")
    kwargs = convvit_preset(arch, img_size=img_size, pretrain_img_size=img_size, use_abs_pos=True,
                            window_block_indexes=(), rel_pos_bias=None, **overrides)
    preset = CONVVIT_PRESETS[arch]
    changed = any(tuple(kwargs[k]) != tuple(preset[k]) for k in ("embed_dims", "depths"))
    if changed or kwargs["num_heads"] != preset["num_heads"]:
        arch = (f"custom (widths {'/'.join(map(str, kwargs['embed_dims']))}, depths "
                f"{'/'.join(map(str, kwargs['depths']))}, {kwargs['num_heads']} heads, from {arch})")
    return ConvMAEEncoder(ConvViT(**kwargs), img_size=img_size, arch=arch)


class ConvMAE(PretrainModel):
    """ConvMAE around a :class:`ConvMAEEncoder`.

    Args:
        encoder: the ConvViT encoder.
        decoder_dim: decoder width (512).
        decoder_depth: decoder blocks (8).
        decoder_num_heads: decoder heads (16).
        mask_ratio: fraction of stage-3 tokens removed (0.75); at least one token must stay.
        norm_pix_loss: per-patch normalised pixel targets (ConvMAE's recipe).
    """

    method = "convmae"
    label = "ConvMAE"

    def __init__(
        self,
        encoder: ConvMAEEncoder,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(encoder, **kwargs)
        self.num_tokens = encoder.grid[0] * encoder.grid[1]
        self.len_keep = int(self.num_tokens * (1 - mask_ratio))
        if not 0 <= mask_ratio < 1 or self.len_keep < 1:
            raise ValueError(
                f"mask_ratio {mask_ratio} leaves {max(self.len_keep, 0)} of the {self.num_tokens} tokens of the "
                f"{encoder.grid[0]}x{encoder.grid[1]} grid visible; ConvMAE needs at least one (MAE: 0.75)"
            )
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        add_mae_decoder(self, encoder.embed_dim, decoder_dim, decoder_depth, decoder_num_heads, encoder.patch_size,
                        encoder.grid[0], cls_token=False)
        self._init_weights()

    def _init_weights(self) -> None:
        # ConvMAE: MAE's, with the stage-3 patch kernel as the one treated as a Linear; the other
        # convs keep PyTorch's default.
        init_mae_weights(self, self.encoder.convvit.patch_embed3.proj.weight)

    def shuffle(self, batch: int, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample token order ``(B, L)``: argsort of uniform noise (``noise`` fixes it)."""
        if noise is None:
            noise = torch.rand(batch, self.num_tokens, device=self.device)
        elif noise.shape != (batch, self.num_tokens):
            raise ValueError(f"noise must have shape {(batch, self.num_tokens)}, got {tuple(noise.shape)}")
        return torch.argsort(noise.to(self.device), dim=1)

    def sample_views(self, batch: int, noise: torch.Tensor | None = None) -> list[torch.Tensor]:
        """MAE's random masking: one view, the ``len_keep`` tokens with the smallest noise."""
        return [self.shuffle(batch, noise)[:, : self.len_keep]]

    def forward_decoder(self, latent: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Visible latents ``(N, L_keep, C)`` at ``ids_keep (N, L_keep)`` -> pixels ``(N, L, p*p*3)``.

        Each latent is placed at its token position and every other position gets the mask token
        (MAE un-shuffles ``cat(latents, mask tokens)`` with ``ids_restore``: the same sequence).
        """
        x = self.decoder_embed(latent)
        full = self.mask_token.to(x.dtype).expand(x.shape[0], self.num_tokens, -1)
        x = torch.scatter(full, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[2]), x)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))

    def forward_loss_terms(self, images: torch.Tensor, noise: torch.Tensor | None = None):
        """``(loss, pred (V*B, L, p*p*3), mask (V*B, L) with 1 = removed)`` for normalised ``images``."""
        ids_keep = self.sample_views(images.shape[0], noise)
        latent = self.encoder(images, ids_keep)
        ids = torch.cat(ids_keep, dim=0)
        pred = self.forward_decoder(latent, ids)
        mask = 1.0 - visible_map(ids, self.num_tokens)
        target = patchify(images, self.encoder.patch_size).repeat(len(ids_keep), 1, 1)
        return mae_loss(target, pred, mask, self.norm_pix_loss), pred, mask

    def forward(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        loss, _, _ = self.forward_loss_terms(self.normalize(stack_images(batch, device=self.device)))
        return {f"loss_{self.method}": loss}

    def export_meta(self) -> dict:
        vit = self.encoder.convvit
        return {
            "method": self.method,
            "backbone": "convvit",
            "arch": self.encoder.arch,
            "image_size": self.encoder.img_size,
            "embed_dims": list(vit.embed_dims),
            "depths": list(vit.depths),
            "num_heads": vit.blocks3[0].attn.num_heads,
            "patch_sizes": list(vit.patch_sizes),
            "patch_size": vit.patch_size,
            "pos_embed": "sincos",
            "pos_embed_has_cls": False,
            "rel_pos_bias": None,
            "mask_ratio": self.mask_ratio,
            "norm_pix_loss": self.norm_pix_loss,
            "pixel_mean": [float(v) for v in self.pixel_mean.flatten()],
            "pixel_std": [float(v) for v in self.pixel_std.flatten()],
        }
