"""MAE-Lite (Wang et al., ICML 2023, "A Closer Look at Self-Supervised Lightweight Vision
Transformers"): MAE for ViT-Tiny, optionally distilling a larger MAE's attention maps.

Follows ``projects/mae_lite/mae_lite_exp.py`` and ``mae_lite_distill_exp.py`` of
wangsr126/mae-lite. The student is :class:`~vitdet_bench.pretrain.MAE` (the recipe lives in the
configs: 12 heads for ViT-Tiny, a 96-wide one-block decoder, RandomResizedCrop 0.08-1). With a
teacher, a frozen MAE encoder runs on the student's own visible set (the same shuffle, so both
see the identical cls + visible tokens) and the pre-softmax attention logits ``q k^T * scale`` of
the last blocks are matched with MSE, through a bias-free 1x1 convolution over heads (on by
default, forced when the head counts differ); the weighted MSE is added to the pixel loss. Only the
distilled block leaves the fused attention kernel.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import stack_images
from .encoder import PretrainEncoder
from .mae import MAE, mae_loss, patchify
from .teacher import ViTTeacher

__all__ = ["MAELite", "attention_distill_loss"]


def attention_distill_loss(student: torch.Tensor, teacher: torch.Tensor,
                           adapter: nn.Module | None = None) -> torch.Tensor:
    """MSE between (adapted) student and teacher attention logits, in float32.

    Args:
        student: ``(B, h_s, T, T)`` pre-softmax logits of the student block.
        teacher: ``(B, h_t, T, T)`` of the teacher block (no gradient).
        adapter: maps ``h_s`` to ``h_t`` channels (MAE-Lite: ``Conv2d(h_s, h_t, 1, bias=False)``).
    """
    if adapter is not None:
        student = adapter(student.to(adapter.weight.dtype))
    if student.shape != teacher.shape:
        raise ValueError(f"student attention {tuple(student.shape)} and teacher attention {tuple(teacher.shape)} "
                         "differ (heads need an adapter; token sets must match)")
    return F.mse_loss(student.float(), teacher.float())


class MAELite(MAE):
    """MAE with MAE-Lite's attention distillation (plain MAE-Lite when ``teacher`` is ``None``).

    Args:
        encoder: the student encoder (MAE-Lite's ViT-Tiny: width 192, 12 blocks, 12 heads).
        teacher: a frozen MAE encoder (:func:`~vitdet_bench.pretrain.teacher.build_teacher`) at the
            student's patch size and grid, with a cls token when the student has one.
        distill_weight: weight of the attention MSE (MAE-Lite: 1.0).
        student_block: the student block whose logits are distilled (-1: the last, MAE-Lite's).
        teacher_block: the teacher block they match (-1: its last).
        attn_adapter: the 1x1 head adapter even when head counts agree (MAE-Lite's default).
        **kwargs: :class:`MAE`'s arguments (decoder size, mask ratio, norm-pix loss, pixel stats).
    """

    method = "maelite"
    label = "MAE-Lite"
    uses_teacher = True  # for attention distillation (optional)

    def __init__(
        self,
        encoder: PretrainEncoder,
        teacher: ViTTeacher | None = None,
        distill_weight: float = 1.0,
        student_block: int = -1,
        teacher_block: int = -1,
        attn_adapter: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(encoder, **kwargs)
        self.distill_weight = distill_weight
        self.student_block = student_block
        self.teacher_block = teacher_block
        self.attn_adapter = None
        if teacher is None:
            return
        if not isinstance(teacher, ViTTeacher):
            raise TypeError(f"teacher must be a ViTTeacher (build_teacher(...)), got {type(teacher).__name__}")
        where = f"teacher {teacher.name} ({teacher.info.get('path')})"
        if teacher.patch_size != encoder.patch_size or teacher.grid != self.grid:
            raise ValueError(f"{where} runs at patch {teacher.patch_size}, grid {teacher.grid}; the student at patch "
                             f"{encoder.patch_size}, grid {self.grid}: build it with the student's image_size and "
                             "patch_size")
        if teacher.num_prefix_tokens != encoder.num_prefix_tokens:
            raise ValueError(f"{where} has {teacher.num_prefix_tokens} cls tokens, the student "
                             f"{encoder.num_prefix_tokens}: their attention maps cover different tokens")
        heads_s, heads_t = encoder.vit.blocks[student_block].attn.num_heads, teacher.num_heads
        if attn_adapter or heads_s != heads_t:
            self.attn_adapter = nn.Conv2d(heads_s, heads_t, kernel_size=1, bias=False)
        encoder.vit.capture_attn_logits([student_block])
        self.attach_frozen("teacher", teacher)

    @property
    def distilled(self) -> bool:
        return "teacher" in self.__dict__

    def forward_distill_terms(self, raw: torch.Tensor, noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The loss terms for 0-255 images ``raw`` (``noise`` fixes the mask, as in :meth:`MAE.forward_loss_terms`).

        Returns ``loss_mae`` and, with a teacher, ``loss_attn_distill`` (already weighted), plus
        the unweighted pieces for inspection: ``mask``, ``ids_keep``, ``student_logits``,
        ``teacher_logits``.
        """
        images = self.normalize(raw)
        latent, mask, ids_restore = self.forward_encoder(images, noise)
        pred = self.forward_decoder(latent, ids_restore)
        out = {"loss_mae": mae_loss(patchify(images, self.encoder.patch_size), pred, mask, self.norm_pix_loss)}
        if not self.distilled:
            return out
        student = self.encoder.vit.pop_attn_logits(self.student_block)
        # The student's shuffle: its kept patches, in the order its encoder saw them.
        ids_keep = torch.argsort(ids_restore, dim=1)[:, : latent.shape[1] - self.encoder.num_prefix_tokens]
        teacher = self.teacher(raw, ids_keep=ids_keep, logits_block=self.teacher_block).logits
        out["loss_attn_distill"] = self.distill_weight * attention_distill_loss(student, teacher, self.attn_adapter)
        out.update(mask=mask, ids_keep=ids_keep, student_logits=student, teacher_logits=teacher)
        return out

    def forward(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        terms = self.forward_distill_terms(stack_images(batch, device=self.device))
        return {k: v for k, v in terms.items() if k.startswith("loss_")}

    def export_meta(self) -> dict:
        meta = {**super().export_meta(), "distill": None}
        if self.distilled:
            adapter = self.attn_adapter
            meta["distill"] = {
                "teacher": self.teacher.describe(), "weight": self.distill_weight, "student_block": self.student_block,
                "teacher_block": self.teacher_block, "quantity": "pre-softmax attention logits, MSE",
                "adapter": f"1x1 conv {adapter.in_channels} -> {adapter.out_channels} heads" if adapter else None,
            }
            meta["method_name"] = f"MAE-Lite with attention distillation (teacher = {self.teacher.name})"
        else:
            meta["method_name"] = "MAE-Lite"
        return meta
