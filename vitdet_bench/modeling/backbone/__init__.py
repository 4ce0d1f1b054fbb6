"""ViT backbone, the ConvMAE hybrid ConvViT, and their multi-scale necks."""

from .convvit import CONVVIT_PRESETS, CBlock, ConvPatchEmbed, ConvViT, build_convvit, convvit_preset
from .pyramid import FPN, MultiScaleAdapter, SimpleFeaturePyramid
from .rel_pos import RelativePositionBias, geometric_offsets, resize_rel_pos_table
from .utils import get_abs_pos, window_partition, window_unpartition
from .vit import VIT_PRESETS, Attention, Block, ViT, build_vit, global_block_indexes, vit_preset, window_block_indexes

__all__ = [
    "Attention",
    "Block",
    "CBlock",
    "CONVVIT_PRESETS",
    "ConvPatchEmbed",
    "ConvViT",
    "FPN",
    "MultiScaleAdapter",
    "RelativePositionBias",
    "SimpleFeaturePyramid",
    "VIT_PRESETS",
    "ViT",
    "build_convvit",
    "build_vit",
    "convvit_preset",
    "geometric_offsets",
    "resize_rel_pos_table",
    "vit_preset",
    "get_abs_pos",
    "global_block_indexes",
    "window_block_indexes",
    "window_partition",
    "window_unpartition",
]
