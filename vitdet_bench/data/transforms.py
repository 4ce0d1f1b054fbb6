"""Training and evaluation transforms: large-scale jitter (LSJ) and longest-side resize.

LSJ is assembled from torchvision's ``transforms.v2`` (flip, ``ScaleJitter``, crop, box
sanitising), which move the image, boxes and masks together. torchvision draws its randomness from
the global torch generator, so each sample runs under a forked RNG seeded from the sample's own
seed: the result depends only on (run seed, position in the sample stream), not on the number of
data-loader workers or on where a run was resumed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

__all__ = ["LargeScaleJitter", "ResizeLongestSide"]


class LargeScaleJitter:
    """Flip, resize by a random factor of the target size, random crop to the target (ViTDet LSJ).

    As in ViTDet's ``coco_loader_lsj``: horizontal flip first, then the image is scaled by
    ``s * min(target / H, target / W)`` with ``s ~ U(min_scale, max_scale)`` (aspect ratio kept),
    then cropped to at most ``target x target`` at a random offset. Padding to the square is the
    model's job. Boxes are recomputed from the moved masks (Detectron2's ``recompute_boxes``),
    clipped, and instances left empty are dropped.

    Args:
        image_size: the target side (1024 in the paper).
        min_scale: lower end of the scale range (0.1).
        max_scale: upper end of the scale range (2.0).
        flip_prob: probability of a horizontal flip.
    """

    def __init__(
        self,
        image_size: int = 1024,
        min_scale: float = 0.1,
        max_scale: float = 2.0,
        flip_prob: float = 0.5,
    ) -> None:
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"LSJ needs 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self.image_size = image_size
        self.flip = v2.RandomHorizontalFlip(flip_prob)
        self.jitter = v2.ScaleJitter((image_size, image_size), (min_scale, max_scale), antialias=True)
        self.sanitize = v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=lambda s: s["labels"])

    def __call__(
        self, image: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Transform one sample.

        Args:
            image: ``(3, H, W)`` uint8 RGB.
            masks: ``(N, H, W)`` uint8 instance masks.
            labels: ``(N,)`` int64 class indices.
            seed: the sample's own seed.

        Returns:
            ``(image, boxes, masks, labels)``: boxes ``(N', 4)`` XYXY float32 in the output image.
        """
        h, w = image.shape[-2:]
        sample = {
            "image": tv_tensors.Image(image),
            "masks": tv_tensors.Mask(masks),
            "boxes": tv_tensors.BoundingBoxes(_boxes_from_masks(masks), format="XYXY", canvas_size=(h, w)),
            "labels": labels,
        }
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed also queues a lazy CUDA seeding that
            # records a Python stack trace every call.
            torch.default_generator.manual_seed(seed)
            sample = self.jitter(self.flip(sample))
            sample = self._random_crop(sample)
        masks = sample["masks"].as_subclass(torch.Tensor)
        nonempty = masks.flatten(1).amax(1) > 0 if masks.shape[0] else torch.zeros(0, dtype=torch.bool)
        boxes = _boxes_from_masks(masks[nonempty])
        labels = sample["labels"][nonempty]
        out_h, out_w = sample["image"].shape[-2:]
        sample = self.sanitize(
            {
                "image": sample["image"],
                "masks": tv_tensors.Mask(masks[nonempty]),
                "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(out_h, out_w)),
                "labels": labels,
            }
        )
        return (
            sample["image"].as_subclass(torch.Tensor),
            sample["boxes"].as_subclass(torch.Tensor),
            sample["masks"].as_subclass(torch.Tensor),
            sample["labels"],
        )

    def _random_crop(self, sample: dict) -> dict:
        h, w = sample["image"].shape[-2:]
        crop_h, crop_w = min(h, self.image_size), min(w, self.image_size)
        # One uniform draw for both axes, as Detectron2's FixedSizeCrop does.
        r = float(torch.rand(()))
        top = int(round((h - crop_h) * r))
        left = int(round((w - crop_w) * r))
        if crop_h == h and crop_w == w:
            return sample
        return {
            "image": TF.crop(sample["image"], top, left, crop_h, crop_w),
            "masks": TF.crop(sample["masks"], top, left, crop_h, crop_w),
            "boxes": TF.crop(sample["boxes"], top, left, crop_h, crop_w),
            "labels": sample["labels"],
        }


def _boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Tight XYXY boxes of binary masks; the right/bottom edges are exclusive (x2 = max x + 1);
    an empty mask gets ``(0, 0, 1, 1)``.

    torchvision's ``masks_to_boxes`` plus one, computed from per-row / per-column maxima of the
    uint8 masks: its ``torch.any`` over a bool mask costs ~1 ms per call on the CPU, 4 ms per
    training image (three calls, twice per sample), against ~0.1 ms here.
    """
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros((0, 4), dtype=torch.float32)
    rows = (masks.amax(dim=2) > 0).float()  # (N, H)
    cols = (masks.amax(dim=1) > 0).float()  # (N, W)
    y1, x1 = rows.argmax(dim=1), cols.argmax(dim=1)
    y2 = h - rows.flip(dims=[1]).argmax(dim=1)
    x2 = w - cols.flip(dims=[1]).argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    boxes[rows.amax(dim=1) == 0] = torch.tensor([0.0, 0.0, 1.0, 1.0])
    return boxes


class ResizeLongestSide:
    """Resize so the longest side equals ``image_size`` (Detectron2's ``ResizeShortestEdge(S, S)``).

    Args:
        image_size: the longest side after resizing (1024 in the paper).
    """

    def __init__(self, image_size: int = 1024) -> None:
        self.image_size = image_size

    def get_scale(self, height: int, width: int) -> float:
        return self.image_size / max(height, width)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Resize an ``(H, W, 3)`` uint8 image."""
        h, w = image.shape[:2]
        scale = self.get_scale(h, w)
        new_h, new_w = max(1, int(math.floor(h * scale + 0.5))), max(1, int(math.floor(w * scale + 0.5)))
        if (new_h, new_w) == (h, w):
            return image
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        return cv2.resize(image, (new_w, new_h), interpolation=interp)
