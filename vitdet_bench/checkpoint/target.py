"""The modules a checkpoint loads into: the ViT or ConvViT inside a model, and pre-training models.

A pre-training model (``vitdet_bench.pretrain``) is recognised by its attributes (``method`` and an
``encoder`` holding a ViT, or ConvMAE's a ConvViT), so this package never imports
``vitdet_bench.pretrain``, which imports it.
"""

from __future__ import annotations

import torch.nn as nn

from ..modeling.backbone.convvit import ConvViT
from ..modeling.backbone.vit import ViT
from ..utils.comm import unwrap_model
from .io import CheckpointError

__all__ = ["backbone_of", "find_convvit", "find_vit", "is_method_model", "model_method_label"]


def find_vit(model: nn.Module) -> tuple[ViT, str]:
    """The :class:`ViT` inside ``model`` (or ``model`` itself) and its dotted prefix.

    Args:
        model: a ViT, or a model holding one (DDP-wrapped or not).

    Raises:
        CheckpointError: ``model`` holds no ViT (naming its class).
    """
    for name, module in unwrap_model(model).named_modules():
        if isinstance(module, ViT):
            return module, (name + "." if name else "")
    raise CheckpointError(f"{type(model).__name__} contains no vitdet_bench ViT to load a backbone checkpoint into")


def find_convvit(model: nn.Module) -> tuple[ConvViT, str] | None:
    """The :class:`ConvViT` inside ``model`` (or ``model`` itself) and its dotted prefix; ``None`` if none.

    Args:
        model: a ConvViT, or a model holding one (DDP-wrapped or not).
    """
    for name, module in unwrap_model(model).named_modules():
        if isinstance(module, ConvViT):
            return module, (name + "." if name else "")
    return None


def backbone_of(encoder: nn.Module | None) -> tuple[str, ViT | ConvViT] | None:
    """``(attribute, module)`` of a pre-training encoder's backbone: ``("vit", ViT)`` or
    ``("convvit", ConvViT)``; ``None`` when it has neither.

    Args:
        encoder: a pre-training model's ``encoder`` (or ``None``).
    """
    for name, kind in (("vit", ViT), ("convvit", ConvViT)):
        module = getattr(encoder, name, None)
        if isinstance(module, kind):
            return name, module
    return None


def is_method_model(model: nn.Module) -> bool:
    """Whether ``model`` is a pre-training method here (has ``method`` and an ``encoder`` with a
    ViT, or ConvMAE's with a ConvViT).

    Args:
        model: any model (DDP-wrapped or not).
    """
    model = unwrap_model(model)
    return bool(getattr(model, "method", "")) and backbone_of(getattr(model, "encoder", None)) is not None


def model_method_label(model: nn.Module, method: str | None = None) -> str:
    """The name of a pre-training method in messages, as its class states it (``label``).

    Args:
        model: a pre-training model (:func:`is_method_model`).
        method: another method's name (a file's); default: the model's own.
    """
    model = unwrap_model(model)
    method = model.method if method is None else method
    label_of = getattr(model, "label_of", None)
    return label_of(method) if callable(label_of) else method
