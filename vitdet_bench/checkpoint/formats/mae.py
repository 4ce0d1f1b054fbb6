"""MAE (He et al., 2021; facebookresearch/mae).

Files: ``main_pretrain.py``'s ``misc.save_model`` writes ``{"model", "optimizer", "epoch", "scaler",
"args"}`` with ``models_mae.MaskedAutoencoderViT``'s names: the encoder as timm's ViT (``cls_token``,
``pos_embed``, ``patch_embed``, ``blocks``, ``norm``) beside the decoder (``mask_token``,
``decoder_*``). The released ``mae_pretrain_vit_*.pth`` hold ``{"model": encoder}`` only; the
``*_full.pth`` / ``mae_visualize_*.pth`` ones the decoder too; ``main_finetune.py`` adds
``fc_norm`` (global pooling). ``main_pretrain.py --resume FILE`` loads ``"model"`` strictly and,
without an optimizer state, starts at epoch 0.

Recognised by the decoder or mask token, ``fc_norm``, or (timm's names in a ``"model"`` container)
the absence of a classifier. The decoder and mask token are dropped for a backbone (pre-training
only); relative position is zero-initialised, as the benchmarking paper does for MAE.
"""

from __future__ import annotations

from ..report import LoadReport
from .base import CheckpointFormat, OfficialLayout, Probe
from .registry import register_format

__all__ = ["MAEFormat"]


@register_format
class MAEFormat(CheckpointFormat):
    """MAE's pre-training (or fine-tuning) file."""

    name = "mae"
    label = "MAE"
    detect_order = 80
    shares_names = True
    official = True
    layout = OfficialLayout(
        "mae", parts=(("mask_token", "mask_token"), ("decoder_", "decoder_")),
        resume="main_pretrain.py --resume FILE (loads 'model'; no optimizer: epoch 0, a new schedule)")

    def recognizes(self, probe: Probe) -> bool:
        keys = probe.keys
        if not probe.has_vit_blocks:
            return False
        if any(k.startswith("decoder_") or k == "mask_token" for k in keys) or "fc_norm.weight" in keys:
            return True
        return probe.container in ("model", "module") and "head.weight" not in keys

    def mismatch_hint(self, report: LoadReport) -> str | None:
        if any(k.startswith("decoder_") for k in report.missing_unexpected):
            return ("MAE's mae_pretrain_vit_*.pth releases hold the encoder only; mae_pretrain_vit_*_full.pth "
                    "and mae_visualize_vit_*.pth hold the decoder too.")
        return None
