"""Optimizer parameter groups: no weight decay on norms, biases and position tables; optional
layer-wise lr decay (ViTDet / BEiT) asked of the backbone rather than parsed from names."""

from __future__ import annotations

import logging

import torch.nn as nn
from torchvision.models.convnext import LayerNorm2d

__all__ = ["get_optimizer_params", "NORM_TYPES"]

logger = logging.getLogger(__name__)

# Detectron2's list misses its own LayerNorm (so ViTDet's neck LN gets decay); ours includes the
# channels-first LayerNorm2d the heads use.
NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.modules.instancenorm._InstanceNorm,
    LayerNorm2d,
)


def get_optimizer_params(
    model: nn.Module,
    weight_decay_norm: float = 0.0,
    weight_decay_bias: float = 0.0,
    weight_decay_embed: float = 0.0,
    layer_decay_rate: float | None = None,
) -> list[dict]:
    """Split a model's trainable parameters into optimizer groups.

    Parameters of norm layers get ``weight_decay_norm``, biases get ``weight_decay_bias``, and the
    names a module lists in ``no_weight_decay()`` (the ViT's ``pos_embed`` and relative position
    tables) get ``weight_decay_embed``; everything else uses the optimizer's ``weight_decay``.
    With ``layer_decay_rate`` set, each parameter of a module that has ``layer_id(name)`` and
    ``num_layers`` gets ``lr_factor = rate ** (num_layers + 1 - layer_id)`` (heads and neck: 1);
    the lr scheduler multiplies the lr by each group's ``lr_factor``.

    Returns:
        a list of param-group dicts (``params``, optional ``weight_decay``, ``lr_factor``).
    """
    if layer_decay_rate is not None and not 0 < layer_decay_rate <= 1:
        raise ValueError(f"layer_decay_rate must be in (0, 1], got {layer_decay_rate}")
    no_decay: set[str] = set()
    layer_fns: list[tuple[str, nn.Module]] = []
    for prefix, module in model.named_modules():
        dotted = f"{prefix}." if prefix else ""
        if callable(getattr(module, "no_weight_decay", None)):
            no_decay.update(dotted + n for n in module.no_weight_decay())
        if callable(getattr(module, "layer_id", None)) and hasattr(module, "num_layers"):
            layer_fns.append((dotted, module))

    groups: dict[tuple[float | None, float], list] = {}
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        for p_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            wd: float | None = None
            if isinstance(module, NORM_TYPES):
                wd = weight_decay_norm
            elif full in no_decay:
                wd = weight_decay_embed
            elif p_name == "bias":
                wd = weight_decay_bias
            factor = 1.0
            if layer_decay_rate is not None:
                for prefix, owner in layer_fns:
                    if full.startswith(prefix):
                        layer = owner.layer_id(full[len(prefix):])
                        factor = layer_decay_rate ** (owner.num_layers + 1 - layer)
                        break
            groups.setdefault((wd, factor), []).append(param)
    out = []
    for (wd, factor), params in sorted(groups.items(), key=lambda kv: (-kv[0][1], str(kv[0][0]))):
        group: dict = {"params": params, "lr_factor": factor}
        if wd is not None:
            group["weight_decay"] = wd
        out.append(group)
    logger.info(
        "Optimizer groups: %s",
        ", ".join(f"(lr x{g['lr_factor']:.4g}, wd {g.get('weight_decay', 'default')}: {len(g['params'])} tensors)" for g in out),
    )
    return out
