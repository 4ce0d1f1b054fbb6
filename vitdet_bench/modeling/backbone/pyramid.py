"""Multi-scale necks for a plain ViT: the benchmarking paper's adapter + FPN.

``MultiScaleAdapter`` is the XCiT-style adapter of "Benchmarking Detection Transfer Learning with
Vision Transformers" (Li et al., 2021, Sec. 3; ``ViTUp1`` in its code): stride-16 maps are turned
into strides 4, 8, 16 and 32 with deconvolutions and max pooling, keeping the channel count.
``FPN`` runs torchvision's ``FeaturePyramidNetwork`` (top-down + lateral, norm after each conv) on
them and adds P6 by max pooling; levels are named ``p2`` ... ``p6``. With a single scale factor
(1.0) the same two classes give the paper's single-scale ablation (RPN and RoIAlign on stride 16
only).

``SimpleFeaturePyramid`` is ViTDet's neck (Li et al., 2022): all levels from the last map, no
top-down path, LayerNorm after every conv.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import Conv2dNormActivation

from ..layers import get_norm

__all__ = ["MultiScaleAdapter", "FPN", "SimpleFeaturePyramid"]


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


class _Pyramid(nn.Module):
    """What the detector reads from a neck: ``out_channels``, level names, and the padding rule
    (``square_pad`` / ``size_divisibility``) applied to each batch."""

    level_names: list[str]
    top_name: str | None

    def _set_output(self, out_channels: int, square_pad: int, size_divisibility: int) -> None:
        if square_pad and square_pad % size_divisibility:
            raise ValueError(f"square_pad {square_pad} is not a multiple of size_divisibility {size_divisibility}")
        self.out_channels = out_channels
        self.square_pad = square_pad
        self.size_divisibility = size_divisibility

    @property
    def output_names(self) -> list[str]:
        return self.level_names + ([self.top_name] if self.top_name else [])


class FPN(_Pyramid):
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
        self._set_output(out_channels, square_pad, size_divisibility)

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """Images ``(B, 3, H, W)`` -> ``{"p2": ..., ..., "p6": ...}`` each ``(B, out_channels, ., .)``."""
        feats = self.bottom_up(x)
        inputs = OrderedDict((level, feats[name]) for name, level in zip(self.in_features, self.level_names))
        outputs = self.fpn(inputs)
        if self.top_name is not None:
            # torchvision names the extra level "pool"; we keep Detectron2's p2-p6 names.
            outputs[self.top_name] = outputs.pop("pool")
        return outputs


class SimpleFeaturePyramid(_Pyramid):
    """ViTDet's simple feature pyramid: strides 4 / 8 / 16 / 32 (+ P6) from the last ViT map.

    Scale 4: deconv (D -> D/2), LN, GELU, deconv (D/2 -> D/4); scale 2: deconv (D -> D/2);
    scale 1: identity; scale 0.5: max pool. Each level then gets a 1x1 conv to ``out_channels``
    and a 3x3 conv, each followed by ``norm`` (bias only without a norm). P6 is a stride-2
    subsampling of P5 (Detectron2's ``LastLevelMaxPool``).

    Args:
        net: a backbone returning a stride-16 map named ``in_feature``.
        in_feature: the map to build from (the last block's).
        out_channels: channels of every level (256).
        scale_factors: output scales relative to the input stride.
        norm: "LN" in ViTDet; "BN", "SyncBN", "GN" or "" also work.
        top_block: add P6.
        square_pad: pad every batch to this square (1024 in ViTDet, at train and test).
        size_divisibility: padding multiple when ``square_pad`` is 0.
    """

    def __init__(
        self,
        net: nn.Module,
        in_feature: str = "last_feat",
        out_channels: int = 256,
        scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
        norm: str = "LN",
        top_block: bool = True,
        square_pad: int = 0,
        size_divisibility: int = 32,
    ) -> None:
        super().__init__()
        channels = net.output_channels()
        if in_feature not in channels:
            raise ValueError(f"SimpleFeaturePyramid: '{in_feature}' is not an output of the backbone {list(channels)}")
        self.net = net
        self.in_feature = in_feature
        dim = channels[in_feature]
        stride = net.output_strides()[in_feature]
        self.stages = nn.ModuleList()
        self.level_names: list[str] = []
        for scale in scale_factors:
            if scale == 4.0:
                layers = [
                    nn.ConvTranspose2d(dim, dim // 2, 2, stride=2),
                    get_norm(norm or "", dim // 2),
                    nn.GELU(),
                    nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2),
                ]
                level_dim = dim // 4
            elif scale == 2.0:
                layers, level_dim = [nn.ConvTranspose2d(dim, dim // 2, 2, stride=2)], dim // 2
            elif scale == 1.0:
                layers, level_dim = [], dim
            elif scale == 0.5:
                layers, level_dim = [nn.MaxPool2d(kernel_size=2, stride=2)], dim
            else:
                raise ValueError(f"SimpleFeaturePyramid: unsupported scale factor {scale}")
            norm_layer = (lambda c: get_norm(norm, c)) if norm else None
            layers += [
                Conv2dNormActivation(level_dim, out_channels, 1, norm_layer=norm_layer, activation_layer=None,
                                     bias=not norm),
                Conv2dNormActivation(out_channels, out_channels, 3, norm_layer=norm_layer, activation_layer=None,
                                     bias=not norm),
            ]
            self.stages.append(nn.Sequential(*layers))
            self.level_names.append(f"p{int(math.log2(stride / scale))}")
        self.top_name = f"p{int(math.log2(stride / min(scale_factors))) + 1}" if top_block else None
        self._set_output(out_channels, square_pad, size_divisibility)

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """Images ``(B, 3, H, W)`` -> ``{"p2": ..., ..., "p6": ...}``, ordered fine to coarse."""
        feat = self.net(x)[self.in_feature]
        outputs = OrderedDict(sorted(((n, stage(feat)) for n, stage in zip(self.level_names, self.stages)),
                                     key=lambda item: int(item[0][1:])))
        if self.top_name is not None:
            last = next(reversed(outputs.values()))
            outputs[self.top_name] = F.max_pool2d(last, kernel_size=1, stride=2)
        return outputs
