"""ViT backbone and its multi-scale necks."""

from .pyramid import FPN, MultiScaleAdapter
from .utils import get_abs_pos, window_partition, window_unpartition
from .vit import Attention, Block, ViT, global_block_indexes, window_block_indexes

__all__ = [
    "Attention",
    "Block",
    "FPN",
    "MultiScaleAdapter",
    "ViT",
    "get_abs_pos",
    "global_block_indexes",
    "window_block_indexes",
    "window_partition",
    "window_unpartition",
]
