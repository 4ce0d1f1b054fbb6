"""ConvMAE / FastConvMAE (Gao et al., 2022; Alpha-VL/ConvMAE): MAE on the hybrid ConvViT.

Files: ``main_pretrain.py`` saves MAE's ``{"model", "optimizer", "epoch", "scaler", "args"}`` with
``models_convmae.MaskedAutoencoderConvViT``'s names: the ConvViT at the top level (``patch_embed1-3``
conv stems, ``patch_embed4`` (Linear), ``blocks1`` / ``blocks2`` conv blocks, ``blocks3`` ViT blocks,
``pos_embed``), its final ``norm``, the multi-scale fusion into the decoder (``stage1_output_decode``,
``stage2_output_decode``) and MAE's decoder (``mask_token``, ``decoder_*``). Fine-tuned classifiers
(``main_finetune.py``) add ``fc_norm`` / ``head``. The ConvViT here keeps ConvMAE's own names, so
the backbone loads as it is; ``--resume`` loads ``"model"`` (MAE's ``misc.load_model``).

Recognised by ``patch_embed1``. A detector's ConvViT drops the decoder, the fusion, the final norm
and a classifier; relative position (ConvViTDet's tables) is fine-tuning only, zero-initialised. A
plain ViT file given to a ConvViT is refused here, saying why.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import torch

from .base import (
    CanonicalCheckpoint,
    CheckpointFormat,
    CheckpointFormatError,
    OfficialEncoder,
    OfficialLayout,
    Probe,
    find_state_dict,
    strip_prefix,
)
from .registry import detect_format, register_format

__all__ = ["ConvMAEFormat", "refuse_plain_vit", "refuse_unrecognized"]

_DROPS: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"^decoder_|^mask_token$"), "ConvMAE decoder (pre-training only)"),
    (re.compile(r"^stage[12]_output_decode\."), "ConvMAE multi-scale fusion into the decoder (pre-training only)"),
    (re.compile(r"^(norm|fc_norm)\."), "final norm (the detector has none)"),
    (re.compile(r"^head\."), "classification head"),
)
_STEM = "patch_embed1.proj.weight"


@register_format
class ConvMAEFormat(CheckpointFormat):
    """ConvMAE's (and FastConvMAE's) pre-training or fine-tuning file."""

    name = "convmae"
    label = "ConvMAE"
    reads_into = ("convvit",)
    detect_order = 30
    official = True
    layout = OfficialLayout(
        "convmae", backbone="convvit",
        parts=(("mask_token", "mask_token"), ("decoder_", "decoder_"),
               ("stage1_output_decode.", "encoder.stage1_output_decode."),
               ("stage2_output_decode.", "encoder.stage2_output_decode.")),
        resume="main_pretrain.py --resume FILE (MAE's misc.load_model: loads 'model'; no optimizer: epoch 0)")
    # models_convmae.MaskedAutoencoderConvViT's encoder: PatchEmbed (proj conv, norm) x 3, patch_embed4
    # (Linear), CBlocks (norm1, conv1, depthwise attn, conv2, norm2, 1x1-conv mlp), timm 0.3.2 Blocks.
    official_encoder = OfficialEncoder(
        re.compile(r"^(pos_embed|norm\.(weight|bias)|patch_embed[123]\.(proj|norm)\.(weight|bias)"
                   r"|patch_embed4\.(weight|bias)|blocks[12]\.\d+\.(norm[12]|conv[12]|attn|mlp\.fc[12])\.(weight|bias)"
                   r"|blocks3\.\d+\.(norm[12]\.(weight|bias)|attn\.(qkv|proj)\.(weight|bias)|mlp\.fc[12]\.(weight|bias)))$"),
        ("patch_embed1.proj.weight", "patch_embed3.proj.weight", "patch_embed4.weight", "pos_embed", "norm.weight"),
        "ConvMAE's ConvViT: 3 conv patch embeddings, CBlocks, a Linear patch_embed4, plain ViT blocks, "
        "no relative position",
    )

    def recognizes(self, probe: Probe) -> bool:
        return _STEM in probe.keys

    def canonical_convvit(self, obj: Any) -> CanonicalCheckpoint:
        out = CanonicalCheckpoint({}, self.name, dropped=Counter())
        for k, v in _unwrapped_state(obj).items():
            reason = next((why for pattern, why in _DROPS if pattern.search(k)), None)
            if reason is None:
                out.state[k] = v
            else:
                out.dropped[reason] += 1
        return out


def _unwrapped_state(obj: Any) -> dict[str, torch.Tensor]:
    """The state dict of a loaded file, DDP's ``module.`` prefix removed; raises naming what the file holds."""
    state, _ = find_state_dict(obj)
    if state is None:
        keys = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointFormatError(f"no state dict found (top level: {keys})")
    return strip_prefix(state)


def refuse_plain_vit(state: dict[str, torch.Tensor], obj: Any, what: str) -> None:
    """Raise the message for a plain ViT file given to a ConvViT, naming the ViT keys it has.

    Args:
        state: the file's state dict.
        obj: the loaded file (its format is named).
        what: the file, in the message ("the file", "this vitdet_bench export ...").
    """
    try:
        fmt = detect_format(obj)
    except CheckpointFormatError:
        fmt = "unknown"
    found = [k for k in ("patch_embed.proj.weight", "blocks.0.attn.qkv.weight") if k in state]
    raise CheckpointFormatError(
        f"{what} is a plain ViT checkpoint (format '{fmt}': {', '.join(found) or 'ViT names'}), not a ConvViT one: "
        "it has no convolution stages (patch_embed1-3, blocks1, blocks2) and its transformer blocks are "
        "'blocks.N', not 'blocks3.N'. Load it into a ViT detector (configs/COCO/mask_rcnn_vit_b_*.py), or give "
        "the ConvViT a ConvMAE / FastConvMAE checkpoint (projects/ConvMAE, projects/FastConvMAE)."
    )


def refuse_unrecognized(obj: Any) -> None:
    """Raise why a file that no ConvViT format recognises is not a ConvViT's (a plain ViT's, or none)."""
    state = _unwrapped_state(obj)
    if any(k.startswith(("blocks.", "patch_embed.")) for k in state) or any("base_encoder" in k for k in state):
        refuse_plain_vit(state, obj, "the file")
    raise CheckpointFormatError(f"no ConvViT weights (patch_embed1.*, blocks1-3.*) among {sorted(state)[:10]}")
