"""MoCo v3 (Chen, Xie, He, 2021; facebookresearch/moco-v3).

Files: ``main_moco.py`` saves ``{"epoch", "arch", "state_dict", "optimizer", "scaler"}``; the
state dict is ``DDP(moco.builder.MoCo_ViT)``'s: ``module.base_encoder.*`` (a timm ViT whose
``head`` is the projector), ``module.momentum_encoder.*`` (its EMA copy) and ``module.predictor.*``.
Its ``--resume`` loads the optimizer and grad-scaler states too, so a file written back carries
fresh ones (no moments) with the ViT recipe's AdamW settings.

Recognised by ``module.base_encoder.``. A backbone takes the base encoder; the projector, the
momentum encoder and the predictor are dropped, each named in the report.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import CanonicalCheckpoint, CheckpointFormat, OfficialLayout, Probe
from .registry import register_format

__all__ = ["MoCoV3Format"]

_BASE = "module.base_encoder."
# main_moco.py's --resume loads an optimizer and a GradScaler state: fresh ones (no moments), with
# the ViT recipe's AdamW settings (its lr is set every iteration; its weight decay is read from here).
_ADAMW = {"lr": 0.0, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1, "amsgrad": False}
_FRESH_GRAD_SCALER = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                      "_growth_tracker": 0}
_ARCHS = {(384, 12): "vit_small", (768, 12): "vit_base"}
_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@register_format
class MoCoV3Format(CheckpointFormat):
    """MoCo v3's training file."""

    name = "mocov3"
    label = "MoCo v3"
    detect_order = 40
    official = True
    layout = OfficialLayout(
        "mocov3", container="state_dict", prefix="module.",
        encoders=(("base_encoder.", "encoder."), ("momentum_encoder.", "momentum_encoder.")),
        parts=(("base_encoder.head.", "projector."), ("momentum_encoder.head.", "momentum_projector."),
               ("predictor.", "predictor.")),
        resume="main_moco.py --resume FILE (a fresh AdamW and GradScaler state, as its --resume needs; epoch 0)")

    def recognizes(self, probe: Probe) -> bool:
        return probe.state is not None and any(k.startswith(_BASE) for k in probe.state)

    def backbone_state(self, state: dict[str, torch.Tensor], out: CanonicalCheckpoint) -> dict[str, torch.Tensor]:
        kept = {}
        for k, v in state.items():
            if k.startswith(_BASE + "head."):
                out.dropped["MoCo v3 projector"] += 1
            elif k.startswith(_BASE):
                kept[k[len(_BASE):]] = v
            elif k.startswith("module.momentum_encoder."):
                out.dropped["MoCo v3 momentum encoder"] += 1
            elif k.startswith("module.predictor."):
                out.dropped["MoCo v3 predictor"] += 1
            else:
                kept[k] = v
        return kept

    def official_file(self, weights: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> dict[str, Any]:
        params = sum(1 for k in weights if not k.endswith(_BN_BUFFERS))
        width = state["encoder.vit.patch_embed.proj.weight"].shape[0]
        depth = len({k.split(".")[3] for k in state if k.startswith("encoder.vit.blocks.")})
        return {"epoch": 0, "arch": _ARCHS.get((int(width), depth), f"vit (width {width}, depth {depth})"),
                "state_dict": weights,
                "optimizer": {"state": {}, "param_groups": [{**_ADAMW, "params": list(range(params))}]},
                "scaler": dict(_FRESH_GRAD_SCALER)}
