"""``detector``: this project's run checkpoints (``model_final.pth``, ``model_NNNNNNN.pth``), read as a
model's initial weights.

A file is ``{"model": state_dict, "optimizer", "scheduler", "iteration", "rng", ...}`` with the
model's own names. Recognised against the model it initialises: most of its tensors carry that
model's names (a detector of the same kind), or, for a pre-training model, they are a pre-training
run's (``encoder.vit.blocks.*``, another method's maybe). Its ViT part is fitted like any backbone
(position tables resized to the model); it lacks nothing by design.
"""

from __future__ import annotations

import torch

from ...utils.comm import unwrap_model
from ..target import is_method_model
from .base import DetectorCheckpointFormat, Probe
from .registry import register_format

__all__ = ["DetectorFormat"]


@register_format
class DetectorFormat(DetectorCheckpointFormat):
    """A checkpoint of a run of this project (a detector's, or a pre-training run's)."""

    name = "detector"
    label = "run checkpoint"
    detect_order = 20

    def recognizes(self, probe: Probe) -> bool:
        if probe.model is None or probe.state is None:
            return False
        if _mostly_own_names(probe.model, probe.state):
            return True
        return is_method_model(probe.model) and any(k.startswith("encoder.vit.blocks.") for k in probe.state)


def _mostly_own_names(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Most of the file's tensors carry the model's own names (a checkpoint of this model's kind)."""
    own = unwrap_model(model).state_dict()
    return sum(k in own for k in state) >= 0.5 * len(state)
