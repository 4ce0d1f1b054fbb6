"""Models: the ViT backbone family, necks and detectors."""

from .backbone import FPN, MultiScaleAdapter, SimpleFeaturePyramid, ViT, build_vit
from .detector import MaskRCNN
from .layers import get_norm

__all__ = ["FPN", "MaskRCNN", "MultiScaleAdapter", "SimpleFeaturePyramid", "ViT", "build_vit", "get_norm"]
