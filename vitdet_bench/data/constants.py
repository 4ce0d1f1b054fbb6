"""Facts about the datasets the recipes are stated in, kept once.

Pixel statistics are on the 0-255 scale in RGB order, as Detectron2's ``MODEL.PIXEL_MEAN`` for
ImageNet-pre-trained ViTs and the pre-training repositories' ``Normalize`` (x 255). Dataset sizes
turn the papers' epochs into iterations: Detectron2 counts COCO train2017 as 118k images (so 100
epochs at batch 64 are its 184375 iterations); ImageNet-1k train has 1,281,167.
"""

from __future__ import annotations

__all__ = [
    "CLIP_PIXEL_MEAN",
    "CLIP_PIXEL_STD",
    "COCO_TRAIN_IMAGES",
    "IMAGENET_PIXEL_MEAN",
    "IMAGENET_PIXEL_STD",
    "IMAGENET_TRAIN_IMAGES",
]

IMAGENET_PIXEL_MEAN = (123.675, 116.28, 103.53)
IMAGENET_PIXEL_STD = (58.395, 57.12, 57.375)
# OpenAI CLIP's input statistics.
CLIP_PIXEL_MEAN = (122.770938, 116.7460125, 104.09373615)
CLIP_PIXEL_STD = (68.5005327, 66.6321579, 70.32316305)

COCO_TRAIN_IMAGES = 118000
IMAGENET_TRAIN_IMAGES = 1281167
