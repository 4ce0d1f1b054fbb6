"""BEiT (Bao et al., 2021; microsoft/unilm ``beit``).

Files: ``run_beit_pretraining.py`` saves ``{"model", "optimizer", "epoch", "scaler", "args"}`` with
``modeling_pretrain.VisionTransformerForMaskedImageModeling``'s names: timm's ViT without absolute
positions, one shared relative position bias table (``rel_pos_bias.relative_position_bias_table``,
whose last 3 rows are cls -> token, token -> cls and cls -> cls, plus its index buffer), layer scale
``gamma_1`` / ``gamma_2``, separate ``q_bias`` / ``v_bias`` (no key bias), the ``mask_token`` and the
visual-token head ``lm_head``. Fine-tuned files (``run_class_finetuning.py``) hold one table per
block and a classifier. Its ``--resume`` loads ``"model"``; without an optimizer it starts at epoch 0.

Recognised by ``q_bias``, ``gamma_1`` or the shared table. BEiT trains without absolute positions
(the benchmarking paper random-initialises them for the detector), and its bias tables are loaded
(every other format's are zero-initialised). Layer scale is renamed to timm's ``lsN.gamma``; the
adapter folds it, fuses the q / v biases and fits the tables to the model.
"""

from __future__ import annotations

import math
import re

import torch
from timm.models.beit import gen_relative_position_index

from ...modeling.backbone.rel_pos import NUM_CLS_ENTRIES
from ..io import CheckpointError
from .base import CheckpointFormat, OfficialEncoder, OfficialLayout, Probe
from .registry import register_format

__all__ = ["BEiTFormat"]

_TABLE = "rel_pos_bias.relative_position_bias_table"


@register_format
class BEiTFormat(CheckpointFormat):
    """BEiT's pre-training (or fine-tuning) file."""

    name = "beit"
    label = "BEiT"
    detect_order = 70
    official = True
    layout = OfficialLayout(
        "beit", parts=(("mask_token", "mask_token"), ("lm_head.", "lm_head.")),
        resume="run_beit_pretraining.py --resume FILE (loads 'model'; no optimizer: epoch 0)")
    official_encoder = OfficialEncoder(
        re.compile(r"^(cls_token|pos_embed|patch_embed\.proj\.(weight|bias)|norm\.(weight|bias)"
                   r"|rel_pos_bias\.relative_position_(bias_table|index)"
                   r"|blocks\.\d+\.(gamma_[12]|norm[12]\.(weight|bias)|attn\.(q_bias|v_bias|qkv\.weight"
                   r"|proj\.(weight|bias))|mlp\.fc[12]\.(weight|bias)))$"),
        ("cls_token", "patch_embed.proj.weight", _TABLE, "norm.weight"),
        "timm's ViT with BEiT layer scale, q / v biases and a shared bias table",
    )

    def recognizes(self, probe: Probe) -> bool:
        return probe.has_vit_blocks and any(
            k.endswith(("attn.q_bias", "gamma_1")) or k.startswith("rel_pos_bias.") for k in probe.keys)

    def expected_missing(self, key: str) -> bool:
        # BEiT's tables are loaded; it has no absolute positions (the paper random-inits them).
        return key.endswith(("rel_pos_h", "rel_pos_w")) or key == "pos_embed"

    def encoder_names(self, enc: dict[str, torch.Tensor], source: str, where: str) -> dict[str, torch.Tensor]:
        out = {}
        for key, value in enc.items():
            name = re.sub(r"^(blocks\.\d+)\.ls([12])\.gamma$", r"\1.gamma_\2", key)
            out[name.replace("rel_pos_bias_global.", "rel_pos_bias.")] = value
        table = out.get(_TABLE)
        if table is not None:
            side = math.isqrt(table.shape[0] - NUM_CLS_ENTRIES)
            if side * side + NUM_CLS_ENTRIES != table.shape[0] or side % 2 == 0:
                raise CheckpointError(f"{source}: {where}'s bias table has {table.shape[0]} rows, not BEiT's "
                                      "(2W-1)^2 + 3 (its 3 cls rows): build the encoder with cls_token=True")
            window = (side + 1) // 2
            out["rel_pos_bias.relative_position_index"] = gen_relative_position_index((window, window))
        return out
