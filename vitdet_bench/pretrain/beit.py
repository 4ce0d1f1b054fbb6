"""BEiT (Bao et al., 2021): predict the visual tokens of block-wise masked patches.

Follows ``modeling_pretrain.py``: masked patch embeddings are replaced by a learned mask token
before the cls token is prepended; the encoder has a shared relative position bias (with BEiT's
3 learned cls rows), layer scale and q/v biases (and no absolute positions); a linear ``lm_head``
over the masked positions is trained with cross-entropy against the tokenizer's ids; weights
start from BEiT's +-1 std truncated normal (:func:`beit_trunc_normal_`). The block mask comes
with each sample (drawn by the data mapper from the sample's seed, as BEiT draws it in the
dataset).

One accepted difference: the tokenizer sees the model's own crop (224 px at paper scale; the
DALL-E tokenizer halves it to 112 px with an antialiased bicubic resize), where BEiT's loader
resamples the same crop region a second time, to 112 px with Lanczos, for the tokenizer.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from ..utils.events import try_put_scalar
from .common import PretrainModel, stack_images
from .encoder import PretrainEncoder

__all__ = ["BEiT", "beit_trunc_normal_"]


def beit_trunc_normal_(tensor: torch.Tensor, std: float = 0.02) -> torch.Tensor:
    """BEiT's initialiser: a normal of ``std`` truncated at +-1 std (``modeling_pretrain.py`` wraps
    timm's ``trunc_normal_`` with ``a=-std, b=std``; timm's own bounds are absolute, +-2, so at
    std 0.02 it barely truncates). The truncated distribution's std is ``0.5396 * std``."""
    return trunc_normal_(tensor, mean=0.0, std=std, a=-std, b=std)


class BEiT(PretrainModel):
    """Masked image modelling with discrete targets around a :class:`PretrainEncoder`.

    Args:
        encoder: BEiT-style encoder (``rel_pos_bias="shared"``, ``init_values=0.1``, ``qv_bias=True``,
            ``pos_embed="none"``).
        tokenizer: a frozen module with ``get_codebook_indices(images_0_255)`` and ``vocab_size``
            (see :mod:`vitdet_bench.pretrain.tokenizers`).
    """

    method = "beit"
    label = "BEiT"
    batch_keys = ("image", "label", "mask")  # the block mask is drawn by the mapper

    def __init__(self, encoder: PretrainEncoder, tokenizer: nn.Module, **kwargs) -> None:
        super().__init__(encoder, **kwargs)
        if not hasattr(tokenizer, "get_codebook_indices"):
            raise TypeError(f"tokenizer {type(tokenizer).__name__} has no get_codebook_indices(images)")
        if getattr(tokenizer, "patch_size", encoder.patch_size) != encoder.patch_size:
            raise ValueError(f"tokenizer downsamples by {tokenizer.patch_size}, the ViT's patch size is "
                             f"{encoder.patch_size}")
        dim = encoder.embed_dim
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.lm_head = nn.Linear(dim, tokenizer.vocab_size)
        self._init_weights()
        # Frozen and kept out of state_dict / parameters: it is an input pipeline, not a model part.
        self.attach_frozen("tokenizer", tokenizer)

    @torch.no_grad()
    def _init_weights(self, std: float = 0.02) -> None:
        # As modeling_pretrain.py: BEiT's +-1 std truncated normal for the tokens, every Linear
        # (lm head included) and the patch projection, zero biases, LayerNorm (1, 0); the bias
        # table, q / v biases and layer scale keep their constant inits (0, 0, init_values).
        # Then each block's output projections are scaled by 1 / sqrt(2 * layer)
        # ("fix_init_weight") so deep residual streams start balanced.
        enc = self.encoder
        for token in (enc.cls_token, self.mask_token, enc.vit.pos_embed):
            if token is not None and token.requires_grad:
                beit_trunc_normal_(token, std)
        for m in [*enc.modules(), self.lm_head]:
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                beit_trunc_normal_(m.weight, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for layer_id, blk in enumerate(enc.vit.blocks, start=1):
            blk.attn.proj.weight.div_((2.0 * layer_id) ** 0.5)
            blk.mlp.fc2.weight.div_((2.0 * layer_id) ** 0.5)

    def forward_logits(self, images: torch.Tensor, bool_masked: torch.Tensor) -> torch.Tensor:
        """Visual-token logits ``(num_masked, vocab)`` for the masked patches of normalised ``images``."""
        enc = self.encoder
        x = enc.patch_tokens(images)
        w = bool_masked.flatten(1).unsqueeze(-1).type_as(x)
        x = x * (1 - w) + self.mask_token.type_as(x) * w
        x = enc.forward_blocks(enc.prepend_cls(enc.add_pos(x)))[:, enc.num_prefix_tokens:]
        return self.lm_head(x[bool_masked.flatten(1)])

    def forward(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        raw = stack_images(batch, device=self.device)
        masks = torch.stack([torch.as_tensor(s["mask"]) for s in batch]).to(self.device).bool()
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
            ids = self.tokenizer.get_codebook_indices(raw)
        if ids.shape != masks.shape:
            raise ValueError(f"tokenizer grid {tuple(ids.shape[1:])} != mask grid {tuple(masks.shape[1:])}")
        logits = self.forward_logits(self.normalize(raw), masks)
        labels = ids[masks]
        loss = F.cross_entropy(logits.float(), labels)
        with torch.no_grad():
            try_put_scalar("mlm_acc", float((logits.argmax(-1) == labels).float().mean()))
        return {"loss_beit": loss}

    def export_meta(self) -> dict:
        tok = self.tokenizer
        return {**super().export_meta(), "tokenizer": type(tok).__name__, "vocab_size": int(tok.vocab_size)}
