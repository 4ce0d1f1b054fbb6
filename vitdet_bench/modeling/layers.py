"""Normalization choice by name, shared by the neck and the heads."""

from __future__ import annotations

import math

import torch.nn as nn
from torchvision.models.convnext import LayerNorm2d

__all__ = ["get_norm", "NORMS"]

NORMS = ("BN", "SyncBN", "GN", "LN", "")


def get_norm(norm: str, channels: int) -> nn.Module:
    """Build a norm layer for ``(N, C, H, W)`` maps.

    Args:
        norm: "BN", "SyncBN" (torch's; converted to BN when a run cannot sync, see the trainer),
            "GN" (32 groups, fewer when ``channels`` is not a multiple), "LN" (channels-first
            LayerNorm, as ViTDet) or "" for none.
        channels: number of channels.
    """
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "SyncBN":
        return nn.SyncBatchNorm(channels)
    if norm == "GN":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if norm == "LN":
        return LayerNorm2d(channels, eps=1e-6)
    if norm == "":
        return nn.Identity()
    raise ValueError(f"Unknown norm '{norm}'; expected one of {NORMS}")


def norm_factory(norm: str):
    """``get_norm`` with the name bound, for torchvision heads that take ``norm_layer(channels)``."""
    if not norm:
        return None

    def make(channels: int) -> nn.Module:
        return get_norm(norm, channels)

    return make
