"""MAE-Lite (Wang et al., 2023; wangsr126/mae-lite): MAE for tiny ViTs, with attention distillation.

Files: ``tools/train.py`` saves ``{"start_epoch", "model", "optimizer", "scheduler", "scaler",
"best_top1", ...}`` where ``"model"`` is ``DDP(MAE(exp, MaskedAutoencoderViT)).state_dict()``: MAE's
model under ``module.model.`` (``model.`` from one GPU). The distillation wrapper adds its frozen
teacher (``tch_model.``, MAE's encoder) and ``attn_adapter.adapter{K}.weight``, the 1x1 conv that
maps the student's attention of 0-based block K to the teacher's heads. Its ``--resume`` needs the
optimizer, scheduler and scaler states too, so this layout is read, not written.

Recognised by ``model.blocks.``. A backbone takes the student's encoder (MAE's names); the teacher
and adapter are dropped (the teacher here is built from its own file, ``teacher.path``). A whole
MAE-Lite model takes the adapter when it distils the same block, and starts it anew when the file
has none.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn

from ..report import LoadReport
from .base import CanonicalCheckpoint, CheckpointFormat, OfficialLayout, Probe, strip_prefix
from .registry import register_format

__all__ = ["MAELiteFormat"]

_MODEL = "model."
_DROPS = (("tch_model.", "MAE-Lite's frozen distillation teacher (tch_model)"),
          ("attn_adapter.", "MAE-Lite's attention adapter (distillation)"))
# MAE-Lite names its attention adapter after the distilled block (0-based): attn_adapter.adapter11
# for the last of 12 blocks (distill_attn_idx=(12,)); the model here has one, ``attn_adapter``.
_ADAPTER = re.compile(r"^attn_adapter\.adapter(\d+)\.weight$")


@register_format
class MAELiteFormat(CheckpointFormat):
    """MAE-Lite's training file (read only)."""

    name = "maelite"
    label = "MAE-Lite"
    detect_order = 50
    official = True
    layout = OfficialLayout(
        "maelite", prefix="module.", encoders=(("model.", "encoder."),),
        parts=(("model.mask_token", "mask_token"), ("model.decoder_", "decoder_"), ("attn_adapter.", "attn_adapter.")),
        drops=(("tch_model.", "MAE-Lite's frozen teacher (the distillation teacher is built from teacher.path)"),),
        resume="none: mae-lite's train.py --resume also needs its optimizer, scheduler and scaler states",
        writable=False)

    def recognizes(self, probe: Probe) -> bool:
        return any(k.startswith(_MODEL + "blocks.") for k in probe.keys)

    def backbone_state(self, state: dict[str, torch.Tensor], out: CanonicalCheckpoint) -> dict[str, torch.Tensor]:
        """MAE's model (``model.*``) in MAE's names; the teacher and adapter counted as dropped;
        anything else kept under its name (reported unused)."""
        kept = {}
        for k, v in strip_prefix(state).items():
            if k.startswith(_MODEL):
                kept[k[len(_MODEL):]] = v
                continue
            reason = next((why for prefix, why in _DROPS if k.startswith(prefix)), None)
            if reason is None:
                kept[k] = v
            else:
                out.dropped[reason] += 1
        return kept

    def fit_parts(self, plain: dict[str, torch.Tensor], model: nn.Module, report: LoadReport) -> tuple[str, ...]:
        """``attn_adapter.adapter{K}.weight`` -> the model's ``attn_adapter.weight`` when the model
        distils block K; dropped for a model without a teacher. A file without an adapter leaves the
        model's to start anew (expected missing)."""
        adapters = [k for k in plain if _ADAPTER.match(k)]
        for key in adapters:
            block = int(_ADAPTER.match(key).group(1))
            value = plain.pop(key)
            if getattr(model, "attn_adapter", None) is None:
                why = "MAE-Lite's attention adapter (distillation; the model has no teacher)"
                report.dropped[why] = report.dropped.get(why, 0) + 1
                continue
            depth = len(model.encoder.vit.blocks)
            ours = getattr(model, "student_block", -1) % depth
            if block != ours:
                report.unused.append((key, f"MAE-Lite's adapter of block {block + 1} (distill_attn_idx); the model "
                                           f"distils block {ours + 1} of {depth} (model.student_block)"))
                continue
            plain["attn_adapter.weight"] = value
            report.converted.append(("attn_adapter.weight", f"from {key} (MAE-Lite's adapter of block {block + 1})"))
        return () if adapters else ("attn_adapter.",)
