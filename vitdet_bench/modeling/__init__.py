"""Models: the ViT backbone family, necks and detectors."""

from .backbone import FPN, MultiScaleAdapter, ViT
from .detector import MaskRCNN
from .layers import get_norm

__all__ = ["FPN", "MaskRCNN", "MultiScaleAdapter", "ViT", "get_norm"]
