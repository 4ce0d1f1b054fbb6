"""Supervised ViT classification, DeiT-style (Touvron et al., 2021): the "supervised" initialization.

Mean of the cls token after the final norm into a linear head; label smoothing, and timm's
Mixup / CutMix on the batch (timm's ``Mixup`` and losses; RandAugment is in the data mapper).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.data import Mixup
from timm.layers import trunc_normal_
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

from .common import PretrainModel, stack_images
from .encoder import PretrainEncoder

__all__ = ["SupervisedViT"]


class SupervisedViT(PretrainModel):
    """Image classification with a :class:`PretrainEncoder`.

    Args:
        encoder: the encoder (cls token, learned positions, as DeiT).
        num_classes: classes (``None``: filled from the training data by ``tools/pretrain_net.py``).
        label_smoothing: DeiT: 0.1.
        mixup_alpha: DeiT: 0.8 (0 disables).
        cutmix_alpha: DeiT: 1.0 (0 disables).
    """

    method = "supervised"
    label = "supervised (DeiT)"

    def __init__(
        self,
        encoder: PretrainEncoder,
        num_classes: int | None = 1000,
        label_smoothing: float = 0.1,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(encoder, **kwargs)
        if encoder.cls_token is None:
            raise ValueError("the supervised model classifies the cls token: build the encoder with cls_token=True")
        if not num_classes or num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.head = nn.Linear(encoder.embed_dim, num_classes)
        trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.mixup = None
        if mixup_alpha > 0 or cutmix_alpha > 0:
            self.mixup = Mixup(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, label_smoothing=label_smoothing,
                               num_classes=num_classes)
            self.criterion = SoftTargetCrossEntropy()
        elif label_smoothing > 0:
            self.criterion = LabelSmoothingCrossEntropy(smoothing=label_smoothing)
        else:
            self.criterion = nn.CrossEntropyLoss()
        self.label_smoothing = label_smoothing

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(images)[:, 0])

    def forward(self, batch: list[dict]) -> dict[str, torch.Tensor] | torch.Tensor:
        images = self.normalize(stack_images(batch, device=self.device))
        if not self.training:
            return self.logits(images)
        labels = torch.as_tensor([s["label"] for s in batch], device=self.device)
        if int(labels.min()) < 0 or int(labels.max()) >= self.num_classes:
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {labels.tolist()}")
        if self.mixup is not None:
            if images.shape[0] % 2:
                raise ValueError("Mixup / CutMix need an even per-process batch size")
            images, labels = self.mixup(images, labels)
        return {"loss_cls": self.criterion(self.logits(images), labels)}

    def export_meta(self) -> dict:
        return {**super().export_meta(), "num_classes": self.num_classes}
