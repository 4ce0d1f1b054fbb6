"""Mask R-CNN over any backbone that returns named multi-scale maps, from torchvision's parts."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork

from ...data.constants import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD
from .mask_paste import paste_masks

__all__ = ["MaskRCNN", "LOSS_NAMES"]

# torchvision's loss names -> Detectron2's, which is what metrics.json and users expect.
LOSS_NAMES = {
    "loss_objectness": "loss_rpn_cls",
    "loss_rpn_box_reg": "loss_rpn_loc",
    "loss_classifier": "loss_cls",
    "loss_box_reg": "loss_box_reg",
    "loss_mask": "loss_mask",
}


class MaskRCNN(nn.Module):
    """Mask R-CNN: backbone -> RPN -> RoI box and mask heads (Detectron2's input/output contract).

    Images are normalized here and padded bottom/right to ``backbone.square_pad`` (or a multiple of
    ``backbone.size_divisibility``), so the data pipeline hands over raw uint8 RGB images.

    Input (a list, one dict per image):
        ``image``: ``(3, H, W)`` uint8 RGB, already resized / augmented;
        ``height``, ``width``: the original image size detections are mapped back to (eval);
        ``instances`` (training): ``boxes`` ``(N, 4)`` XYXY in ``image`` pixels, ``labels`` ``(N,)``
        0-based contiguous classes, ``masks`` ``(N, H, W)`` uint8.

    Output:
        training: a dict of scalar losses (``loss_rpn_cls``, ``loss_rpn_loc``, ``loss_cls``,
        ``loss_box_reg``, ``loss_mask``);
        evaluation: one dict per image with ``boxes`` ``(K, 4)`` XYXY in original pixels,
        ``scores`` ``(K,)``, ``labels`` ``(K,)`` 0-based, ``masks`` ``(K, height, width)`` bool.

    Args:
        backbone: returns an ordered dict of maps (``p2`` ... ``p6``); has ``square_pad`` and
            ``size_divisibility``.
        rpn: torchvision ``RegionProposalNetwork``.
        roi_heads: torchvision ``RoIHeads`` with the mask branch.
        num_classes: number of object classes (no background).
        pixel_mean: RGB mean on the 0-255 scale.
        pixel_std: RGB std on the 0-255 scale.
        mask_threshold: probability at or above which a pasted mask pixel is foreground.
    """

    def __init__(
        self,
        backbone: nn.Module,
        rpn: RegionProposalNetwork,
        roi_heads: RoIHeads,
        num_classes: int,
        pixel_mean: Sequence[float] = IMAGENET_PIXEL_MEAN,
        pixel_std: Sequence[float] = IMAGENET_PIXEL_STD,
        mask_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        if num_classes is None or num_classes <= 0:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.num_classes = num_classes
        self.mask_threshold = mask_threshold
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess(self, batched_inputs: list[dict]) -> ImageList:
        """Normalize and pad the images into one batch tensor."""
        images = [(x["image"].to(self.device).float() - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        sizes = [tuple(int(s) for s in im.shape[-2:]) for im in images]
        square = int(getattr(self.backbone, "square_pad", 0) or 0)
        div = int(getattr(self.backbone, "size_divisibility", 32) or 1)
        max_h, max_w = max(s[0] for s in sizes), max(s[1] for s in sizes)
        if square:
            if max_h > square or max_w > square:
                raise ValueError(f"an input image of size {(max_h, max_w)} exceeds square_pad={square}")
            pad_h = pad_w = square
        else:
            pad_h, pad_w = -(-max_h // div) * div, -(-max_w // div) * div
        batch = images[0].new_zeros((len(images), 3, pad_h, pad_w))
        for b, im in zip(batch, images):
            b[:, : im.shape[1], : im.shape[2]].copy_(im)
        return ImageList(batch, sizes)

    def _targets(self, batched_inputs: list[dict]) -> list[dict[str, torch.Tensor]]:
        targets = []
        for x in batched_inputs:
            inst = x["instances"]
            targets.append(
                {
                    "boxes": inst["boxes"].to(self.device, torch.float32),
                    # torchvision reserves label 0 for background.
                    "labels": inst["labels"].to(self.device) + 1,
                    "masks": inst["masks"].to(self.device),
                }
            )
        return targets

    def forward(self, batched_inputs: list[dict]) -> dict[str, torch.Tensor] | list[dict]:
        images = self.preprocess(batched_inputs)
        features = self.backbone(images.tensors)
        targets = self._targets(batched_inputs) if self.training else None
        proposals, rpn_losses = self.rpn(images, features, targets)
        detections, head_losses = self.roi_heads(features, proposals, images.image_sizes, targets)
        if self.training:
            losses = {**rpn_losses, **head_losses}
            return {LOSS_NAMES.get(k, k): v for k, v in losses.items()}
        return self.postprocess(detections, batched_inputs, images.image_sizes)

    def postprocess(
        self, detections: list[dict], batched_inputs: list[dict], image_sizes: list[tuple[int, int]]
    ) -> list[dict]:
        """Map detections from the network input back to each original image."""
        results = []
        for det, inp, (h, w) in zip(detections, batched_inputs, image_sizes):
            out_h, out_w = int(inp.get("height", h)), int(inp.get("width", w))
            boxes = det["boxes"].clone()
            boxes[:, 0::2] *= out_w / w
            boxes[:, 1::2] *= out_h / h
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, out_w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, out_h)
            result = {"boxes": boxes, "scores": det["scores"], "labels": det["labels"] - 1}
            if "masks" in det:
                result["masks"] = paste_masks(det["masks"], boxes, (out_h, out_w), self.mask_threshold)
            results.append(result)
        return results
