"""Optimizer parameter groups: which parameters take weight decay, and layer-wise lr decay.

Every training recipe states its groups with the same arguments of :func:`get_optimizer_params`,
so a config reads like the official code it follows:

* detection (BENCH / ViTDet): no decay on norms, biases and the position tables the ViT lists
  in ``no_weight_decay()`` (``weight_decay_norm = weight_decay_bias = weight_decay_embed = 0``);
* timm's ``add_weight_decay`` rule (MAE, DeiT, BEiT's ``optim_factory``): no decay on every
  1-D parameter and every bias (``weight_decay_1d = weight_decay_bias = 0``), plus the names the
  official model lists in its ``no_weight_decay()``, given as ``overrides``;
* MoCo v3: ``AdamW(model.parameters())``, every parameter decayed (all rules ``None``).

Layer-wise lr decay (ViTDet / BEiT) asks the backbone for layer ids rather than parsing names.
"""

from __future__ import annotations

import logging
from typing import Mapping

import torch
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

_OVERRIDE_KEYS = ("weight_decay", "lr_factor")


def _check_overrides(overrides: Mapping | None) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name, values in (overrides or {}).items():
        if not isinstance(values, Mapping):
            raise ValueError(
                f"optimizer.params.overrides[{name!r}] must be a dict such as {{'weight_decay': 0.0}}, got {values!r}"
            )
        unknown = sorted(set(values) - set(_OVERRIDE_KEYS))
        if unknown:
            raise ValueError(
                f"optimizer.params.overrides[{name!r}] has unknown keys {unknown}; allowed: {list(_OVERRIDE_KEYS)}"
            )
        out[str(name)] = {k: (None if values[k] is None else float(values[k])) for k in values}
    return out


def _known_names(model: nn.Module) -> set[str]:
    """Own and full names of every parameter (frozen ones included) and of optional parameters
    switched off (an attribute set to ``None``, such as a ViT's ``pos_embed`` without absolute
    positions): names an override may give without being a typo."""
    known: set[str] = set()
    for mod_name, module in model.named_modules():
        dotted = f"{mod_name}." if mod_name else ""
        off = [k for k, v in module._parameters.items() if v is None]
        off += [k for k, v in vars(module).items() if v is None and not k.startswith("_")]
        for name in [n for n, _ in module.named_parameters(recurse=False)] + off:
            known.update((name, dotted + name))
    return known


def _weight_decay(
    module: nn.Module,
    local: str,
    full: str,
    param: torch.Tensor,
    no_decay: set[str],
    weight_decay_norm: float | None,
    weight_decay_embed: float | None,
    weight_decay_bias: float | None,
    weight_decay_1d: float | None,
) -> float | None:
    """The first rule that applies and is set (not ``None``); ``None``: the optimizer's weight decay."""
    rules = (
        (isinstance(module, NORM_TYPES), weight_decay_norm),
        (full in no_decay, weight_decay_embed),
        (local == "bias", weight_decay_bias),
        (param.ndim <= 1, weight_decay_1d),
    )
    return next((wd for applies, wd in rules if applies and wd is not None), None)


def get_optimizer_params(
    model: nn.Module,
    weight_decay_norm: float | None = 0.0,
    weight_decay_bias: float | None = 0.0,
    weight_decay_embed: float | None = 0.0,
    weight_decay_1d: float | None = None,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
    layer_decay_rate: float | None = None,
) -> list[dict]:
    """Split a model's trainable parameters into optimizer groups.

    Each parameter takes the weight decay of the first rule below that applies to it and is set
    (a rule set to ``None`` is skipped); a parameter no rule claims uses the optimizer's
    ``weight_decay``:

    1. ``overrides``: by the parameter's own name (``"cls_token"``, ``"relative_position_bias_table"``,
       as Detectron2's ``overrides``) or its full dotted name;
    2. ``weight_decay_norm``: parameters of norm layers (:data:`NORM_TYPES`);
    3. ``weight_decay_embed``: the names a module lists in ``no_weight_decay()`` (the ViT's
       ``pos_embed`` and relative position tables);
    4. ``weight_decay_bias``: parameters named ``bias``;
    5. ``weight_decay_1d``: every parameter with at most one dimension (norm weights, biases,
       layer-scale gammas, BEiT's ``q_bias`` / ``v_bias``): timm's ``add_weight_decay`` rule.

    With ``layer_decay_rate`` set, each parameter of a module that has ``layer_id(name)`` and
    ``num_layers`` gets ``lr_factor = rate ** (num_layers + 1 - layer_id)`` (heads and neck: 1),
    multiplied by an override's ``lr_factor``; the lr scheduler multiplies the lr by each
    group's ``lr_factor``.

    Args:
        model: the model whose ``requires_grad`` parameters are grouped.
        weight_decay_norm: for norm-layer parameters.
        weight_decay_bias: for biases.
        weight_decay_embed: for the names modules list in ``no_weight_decay()``.
        weight_decay_1d: for every parameter with ``ndim <= 1``.
        overrides: ``{name: {"weight_decay": wd, "lr_factor": f}}`` (``"weight_decay": None``:
            the optimizer's own). A name the model has no parameter for is an error, so a typo
            does not pass silently; an optional parameter switched off (``pos_embed`` of a ViT
            without absolute positions) is accepted.
        layer_decay_rate: layer-wise lr decay in (0, 1].

    Returns:
        a list of param-group dicts (``params``, optional ``weight_decay``, ``lr_factor``).

    Raises:
        ValueError: a bad ``layer_decay_rate`` or override.
    """
    if layer_decay_rate is not None and not 0 < layer_decay_rate <= 1:
        raise ValueError(f"layer_decay_rate must be in (0, 1], got {layer_decay_rate}")
    rules = _check_overrides(overrides)
    used: set[str] = set()
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
            override_name = full if full in rules else p_name if p_name in rules else None
            override = rules.get(override_name, {}) if override_name else {}
            if override_name:
                used.add(override_name)
            if "weight_decay" in override:
                wd = override["weight_decay"]
            else:
                wd = _weight_decay(module, p_name, full, param, no_decay, weight_decay_norm, weight_decay_embed,
                                   weight_decay_bias, weight_decay_1d)
            factor = 1.0
            if layer_decay_rate is not None:
                for prefix, owner in layer_fns:
                    if full.startswith(prefix):
                        layer = owner.layer_id(full[len(prefix):])
                        factor = layer_decay_rate ** (owner.num_layers + 1 - layer)
                        break
            factor *= override.get("lr_factor") or 1.0
            groups.setdefault((wd, factor), []).append(param)
    unknown = sorted(set(rules) - used - _known_names(model))
    if unknown:
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        raise ValueError(
            f"optimizer.params.overrides names {unknown}, which match no parameter of "
            f"{type(model).__name__} (by own or full name; e.g. {names[:6]})"
        )
    out = []
    for (wd, factor), params in sorted(groups.items(), key=lambda kv: (-kv[0][1], str(kv[0][0]))):
        group: dict = {"params": params, "lr_factor": factor}
        if wd is not None:
            group["weight_decay"] = wd
        out.append(group)
    logger.info(
        "Optimizer groups: %s",
        ", ".join(f"(lr x{g['lr_factor']:.4g}, wd {g.get('weight_decay', 'default')}: {len(g['params'])} tensors)"
                  for g in out),
    )
    return out
