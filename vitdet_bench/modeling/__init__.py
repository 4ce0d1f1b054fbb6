"""Models: the ViT backbone family, necks and detectors."""

from .backbone import FPN, ConvViT, MultiScaleAdapter, SimpleFeaturePyramid, ViT, build_convvit, build_vit
from .detector import MaskRCNN
from .layers import get_norm

__all__ = [
    "FPN",
    "ConvViT",
    "MaskRCNN",
    "MultiScaleAdapter",
    "SimpleFeaturePyramid",
    "ViT",
    "build_convvit",
    "build_vit",
    "get_norm",
]
