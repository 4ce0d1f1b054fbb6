"""Feature-reconstruction masked image modelling: predict a frozen teacher's patch features.

EVA (Fang et al., CVPR 2023; ``EVA-01/eva/modeling_pretrain.py``, ``engine_for_pretraining.py``)
with its target source made a parameter. A BEiT-style student (a learned mask token replaces the
block-wise masked patches, ~40%; absolute positions, q / v biases, no layer scale) sees the
masked image; a linear head maps its masked tokens to the teacher's width; the loss is the
negative cosine similarity to the teacher's patch features of the same crop (the teacher sees the
whole image). With a CLIP image tower as teacher this is EVA's pre-training; with any other
teacher it is "feature-reconstruction MIM (teacher = X)", and exports and reports say so.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .beit import beit_trunc_normal_
from .common import PretrainModel, stack_images
from .encoder import PretrainEncoder
from .teacher import ViTTeacher

__all__ = ["FeatureMIM", "negative_cosine_loss"]


def negative_cosine_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """EVA's loss: ``-mean_i cos(pred_i, target_i)`` over rows, in float32 (``1 - cos`` up to a constant).

    Args:
        pred: ``(M, C)`` predictions for the masked patches.
        target: ``(M, C)`` teacher features of the same patches.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    return -F.cosine_similarity(pred.float(), target.float(), dim=-1).mean()


class FeatureMIM(PretrainModel):
    """Masked feature reconstruction around a :class:`PretrainEncoder` and a frozen teacher.

    Args:
        encoder: BEiT-style student (learned absolute positions, cls token; EVA: q / v biases,
            no layer scale, no relative position).
        teacher: a :class:`~vitdet_bench.pretrain.teacher.ViTTeacher` at the student's patch size
            and grid (``build_teacher(path, image_size, patch_size)``).
        init_std: std of the truncated-normal init (EVA: 0.02 for ViT-B / L, 0.015 for EVA-g),
            truncated at +-1 std as EVA's ``modeling_pretrain.trunc_normal_``.
        **kwargs: :class:`PretrainModel`'s (the student's ``pixel_mean`` / ``pixel_std``; EVA: CLIP's).
    """

    method = "feature_mim"
    label = "feature-reconstruction MIM"
    batch_keys = ("image", "label", "mask")  # the block mask is drawn by the mapper
    uses_teacher = True

    def __init__(self, encoder: PretrainEncoder, teacher: ViTTeacher, init_std: float = 0.02, **kwargs) -> None:
        super().__init__(encoder, **kwargs)
        if not isinstance(teacher, ViTTeacher):
            raise TypeError(f"teacher must be a ViTTeacher (build_teacher(...)), got {type(teacher).__name__}")
        grid = encoder.img_size // encoder.patch_size
        if teacher.patch_size != encoder.patch_size or teacher.grid not in (None, grid):
            raise ValueError(f"teacher {teacher.name} ({teacher.info.get('path')}) runs at patch {teacher.patch_size}, "
                             f"grid {teacher.grid}; the student at patch {encoder.patch_size}, grid {grid}: build it "
                             "with the student's image_size and patch_size")
        dim = encoder.embed_dim
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.lm_head = nn.Linear(dim, teacher.out_dim)
        self.init_std = init_std
        self._init_weights()
        self.attach_frozen("teacher", teacher)

    @property
    def display_name(self) -> str:
        return f"feature-reconstruction MIM (teacher = {self.teacher.name})"

    @torch.no_grad()
    def _init_weights(self) -> None:
        # EVA's modeling_pretrain.py (BEiT's): its trunc_normal_ cuts at +-1 std (a=-std, b=std),
        # for pos_embed, cls_token, mask_token, lm_head and every Linear / Conv2d weight (zero
        # biases, LayerNorm (1, 0)); then each block's output projections are divided by
        # sqrt(2 * layer) ("fix_init_weight"). q / v biases keep their zeros.
        enc = self.encoder
        for p in (enc.vit.pos_embed, enc.cls_token, self.mask_token):
            if p is not None and p.requires_grad:
                beit_trunc_normal_(p, self.init_std)
        for m in [*enc.modules(), self.lm_head]:
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                beit_trunc_normal_(m.weight, self.init_std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for layer_id, blk in enumerate(enc.vit.blocks, start=1):
            blk.attn.proj.weight.div_((2.0 * layer_id) ** 0.5)
            blk.mlp.fc2.weight.div_((2.0 * layer_id) ** 0.5)

    def forward_prediction(self, images: torch.Tensor, bool_masked: torch.Tensor) -> torch.Tensor:
        """``(num_masked, teacher.out_dim)`` predictions for the masked patches of normalised ``images``.

        Args:
            images: ``(B, 3, H, W)`` normalised with the student's statistics.
            bool_masked: ``(B, H/p, W/p)`` or ``(B, N)``, True on masked patches.
        """
        enc = self.encoder
        x = enc.patch_tokens(images)
        masked = bool_masked.flatten(1)
        w = masked.unsqueeze(-1).type_as(x)
        x = x * (1 - w) + self.mask_token.type_as(x) * w
        x = enc.forward_blocks(enc.prepend_cls(enc.add_pos(x)))[:, enc.num_prefix_tokens:]
        return self.lm_head(x[masked])

    def forward_terms(self, raw: torch.Tensor,
                      bool_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loss, pred, target)`` for 0-255 images ``raw`` and their masks (``target``: the
        teacher's features of the masked patches, ``(num_masked, out_dim)``)."""
        masked = bool_masked.flatten(1).bool()
        features = self.teacher(raw).features  # no_grad inside; the teacher sees the whole crop
        if features.shape[1] != masked.shape[1]:
            raise ValueError(f"teacher gives {features.shape[1]} patch features, the mask has {masked.shape[1]} "
                             "patches")
        target = features[masked]
        pred = self.forward_prediction(self.normalize(raw), masked)
        return negative_cosine_loss(pred, target), pred, target

    def forward(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        raw = stack_images(batch, device=self.device)
        masks = torch.stack([torch.as_tensor(s["mask"]) for s in batch]).to(self.device)
        loss, _, _ = self.forward_terms(raw, masks)
        return {"loss_feature_mim": loss}

    def export_meta(self) -> dict:
        return {**super().export_meta(), "method_name": self.display_name, "teacher": self.teacher.describe()}
