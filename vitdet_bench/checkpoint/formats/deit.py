"""Supervised ViTs: DeiT's training files (facebookresearch/deit) and timm's flat state dicts.

``deit``: ``main.py`` saves ``{"model", "optimizer", "lr_scheduler", "epoch", "model_ema", "scaler",
"args"}``; the model is timm's ``VisionTransformer`` with its classifier ``head``. ``main.py --resume
FILE`` continues it; ``--finetune FILE`` starts another class count (the head restarted).

``timm``: a flat ``state_dict()`` of timm's ``VisionTransformer`` (what ``timm.create_model`` loads).

Both are timm's names, as MAE's are: any of the three reads the others' files when asked
(``format=``); recognition goes by the container (DeiT's ``"model"`` with a classifier, timm's flat
dict). The cls token, final norm and classifier are dropped for a backbone.
"""

from __future__ import annotations

from .base import CheckpointFormat, OfficialLayout, Probe
from .registry import register_format

__all__ = ["DeiTFormat", "TimmFormat"]


@register_format
class DeiTFormat(CheckpointFormat):
    """DeiT's training file."""

    name = "deit"
    label = "DeiT (supervised)"
    detect_order = 90
    shares_names = True
    official = True
    layout = OfficialLayout("supervised", parts=(("head.", "head."),),
                            resume="DeiT main.py --resume FILE, or --finetune FILE for another class count")

    def recognizes(self, probe: Probe) -> bool:
        return probe.has_vit_blocks and probe.container in ("model", "module") and "head.weight" in probe.keys


@register_format
class TimmFormat(CheckpointFormat):
    """A flat timm ``VisionTransformer`` state dict: DeiT's layout without the container."""

    name = "timm"
    label = "timm ViT"
    detect_order = 100
    shares_names = True
    layout = OfficialLayout("supervised", container="", parts=(("head.", "head."),), writable=False)

    def recognizes(self, probe: Probe) -> bool:
        return probe.has_vit_blocks and probe.container not in ("model", "module")
