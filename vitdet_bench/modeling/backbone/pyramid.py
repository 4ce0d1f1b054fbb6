"""Multi-scale necks for a plain ViT: the benchmarking paper's adapter + FPN.

``MultiScaleAdapter`` is the XCiT-style adapter of "Benchmarking Detection Transfer Learning with
Vision Transformers" (Li et al., 2021, Sec. 3; ``ViTUp1`` in its code): stride-16 maps are turned
into strides 4, 8, 16 and 32 with deconvolutions and max pooling, keeping the channel count.
``FPN`` runs torchvision's ``FeaturePyramidNetwork`` (top-down + lateral, norm after each conv) on
them and adds P6 by max pooling; levels are named ``p2`` ... ``p6``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..layers import get_norm

__all__ = ["MultiScaleAdapter", "FPN"]


class MultiScaleAdapter(nn.Module):
    """Strides 4 / 8 / 16 / 32 from stride-16 ViT maps, channels kept (BENCH's adapter).

    Scale 4: deconv 2x2/2, norm, GELU, deconv 2x2/2; scale 2: one deconv; scale 1: identity;
    scale 0.5: max pool 2x2/2.

    Args:
        net: a backbone returning named stride-16 maps (e.g. :class:`ViT`).
        in_features: the map feeding each scale, one name per scale (the paper taps the four
            global blocks) or a single name used for all of them (the last map).
        scale_factors: output scales relative to stride 16.
        norm: norm between the two deconvs of the 4x path ("GN" in the paper).
    """

    def __init__(
        self,
        net: nn.Module,
        in_features: Sequence[str] | str = "last_feat",
        scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
        norm: str = "GN",
    ) -> None:
        super().__init__()
        if isinstance(in_features, str):
            in_features = [in_features] * len(scale_factors)
        if len(in_features) != len(scale_factors):
            raise ValueError(
                f"MultiScaleAdapter: {len(in_features)} in_features for {len(scale_factors)} scales"
            )
        available = net.output_channels()
        for name in in_features:
            if name not in available:
                raise ValueError(f"MultiScaleAdapter: '{name}' is not an output of the backbone {list(available)}")
        self.net = net
        self.in_features = list(in_features)
        base_stride = net.output_strides()[self.in_features[0]]
        self.stages = nn.ModuleList()
        self.out_strides: list[int] = []
        for name, scale in zip(self.in_features, scale_factors):
            dim = available[name]
            if scale == 4.0:
                stage = nn.Sequential(
                    nn.ConvTranspose2d(dim, dim, 2, stride=2),
                    get_norm(norm, dim),
                    nn.GELU(),
                    nn.ConvTranspose2d(dim, dim, 2, stride=2),
                )
            elif scale == 2.0:
                stage = nn.ConvTranspose2d(dim, dim, 2, stride=2)
            elif scale == 1.0:
                stage = nn.Identity()
            elif scale == 0.5:
                stage = nn.MaxPool2d(kernel_size=2, stride=2)
            else:
                raise ValueError(f"MultiScaleAdapter: unsupported scale factor {scale}")
            self.stages.append(stage)
            self.out_strides.append(int(base_stride / scale))
        self._channels = [available[n] for n in self.in_features]

    def output_channels(self) -> dict[str, int]:
        return {f"s{s}": c for s, c in zip(self.out_strides, self._channels)}

    def output_strides(self) -> dict[str, int]:
        return {f"s{s}": s for s in self.out_strides}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images ``(B, 3, H, W)`` -> ``{"s4": ..., "s8": ..., "s16": ..., "s32": ...}`` NCHW."""
        feats = self.net(x)
        return {f"s{s}": stage(feats[name]) for name, s, stage in zip(self.in_features, self.out_strides, self.stages)}


class FPN(nn.Module):
    """Top-down FPN with normalized convs over a multi-scale bottom-up, plus a max-pooled top level.

    Args:
        bottom_up: a module returning maps named ``"s{stride}"`` with ``output_channels()``.
        out_channels: FPN channels (256 in the paper).
        norm: norm after every FPN conv ("BN" / "SyncBN" in the paper, "GN", "LN" or "").
        top_block: add ``p{last+1}`` by stride-2 max pooling (P6).
        square_pad: pad every batch to this square size (1024 in the paper); 0 pads to a multiple
            of ``size_divisibility`` instead.
        size_divisibility: padding multiple when ``square_pad`` is 0 (the largest stride).
    """

    def __init__(
        self,
        bottom_up: nn.Module,
        out_channels: int = 256,
        norm: str = "BN",
        top_block: bool = True,
        square_pad: int = 0,
        size_divisibility: int = 32,
    ) -> None:
        super().__init__()
        self.bottom_up = bottom_up
        strides = bottom_up.output_strides()
        channels = bottom_up.output_channels()
        self.in_features = sorted(strides, key=lambda n: strides[n])
        self.level_names = [f"p{int(math.log2(strides[n]))}" for n in self.in_features]
        self.top_name = f"p{int(math.log2(strides[self.in_features[-1]])) + 1}" if top_block else None
        norm_layer = (lambda c: get_norm(norm, c)) if norm else None
        self.fpn = FeaturePyramidNetwork(
            [channels[n] for n in self.in_features],
            out_channels,
            extra_blocks=LastLevelMaxPool() if top_block else None,
            norm_layer=norm_layer,
        )
        self.out_channels = out_channels
        self.square_pad = square_pad
        self.size_divisibility = size_divisibility
        if square_pad and square_pad % size_divisibility:
            raise ValueError(f"square_pad {square_pad} is not a multiple of size_divisibility {size_divisibility}")

    @property
    def output_names(self) -> list[str]:
        return self.level_names + ([self.top_name] if self.top_name else [])

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """Images ``(B, 3, H, W)`` -> ``{"p2": ..., ..., "p6": ...}`` each ``(B, out_channels, ., .)``."""
        feats = self.bottom_up(x)
        inputs = OrderedDict((level, feats[name]) for name, level in zip(self.in_features, self.level_names))
        outputs = self.fpn(inputs)
        if self.top_name is not None:
            # torchvision names the extra level "pool"; we keep Detectron2's p2-p6 names.
            outputs[self.top_name] = outputs.pop("pool")
        return outputs
