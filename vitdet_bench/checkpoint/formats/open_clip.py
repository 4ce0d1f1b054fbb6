"""``open_clip``: a CLIP image tower (OpenAI's or open_clip's state dict), as a frozen teacher.

Files: ``{"visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding",
"visual.ln_pre.*", "visual.transformer.resblocks.N.*", "visual.ln_post.*", "visual.proj", ...}`` (the
text tower beside it), or the tower alone without ``visual.`` (also inside ``"state_dict"`` or
``"model"``). Recognised by ``class_embedding`` and ``conv1.weight``; renamed to timm's
``VisionTransformer`` names, as timm's own ``_convert_openai_clip`` does (``ln_pre`` -> ``norm_pre``,
``proj`` transposed -> ``head``), the text tower left out, then read as a ``timm`` file. CLIP's
patch projection has no bias. Only a teacher reads it (EVA's feature targets); a detector is never
initialised from it here.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import CheckpointFormat, Probe
from .registry import register_format

__all__ = ["OpenCLIPFormat", "openclip_prefix", "openclip_visual_to_timm"]

# open_clip / OpenAI CLIP visual tower -> timm VisionTransformer names.
_RENAMES = (
    ("conv1.", "patch_embed.proj."),
    ("transformer.resblocks.", "blocks."),
    ("ln_pre.", "norm_pre."),
    ("ln_post.", "norm."),
    (".ln_1.", ".norm1."),
    (".ln_2.", ".norm2."),
    (".attn.in_proj_weight", ".attn.qkv.weight"),
    (".attn.in_proj_bias", ".attn.qkv.bias"),
    (".attn.out_proj.", ".attn.proj."),
    (".mlp.c_fc.", ".mlp.fc1."),
    (".mlp.c_proj.", ".mlp.fc2."),
)


def openclip_prefix(state: dict[str, Any]) -> str | None:
    """``"visual."`` or ``""`` when ``state`` is a CLIP image tower in open_clip's names, else ``None``."""
    for prefix in ("visual.", ""):
        if f"{prefix}class_embedding" in state and f"{prefix}conv1.weight" in state:
            return prefix
    return None


def openclip_visual_to_timm(state: dict[str, torch.Tensor], prefix: str = "visual.") -> dict[str, torch.Tensor]:
    """A CLIP image tower in open_clip / OpenAI names -> timm ``VisionTransformer`` names.

    ``class_embedding (D,)`` -> ``cls_token (1, 1, D)``, ``positional_embedding (1 + N, D)`` ->
    ``pos_embed (1, 1 + N, D)``, ``proj (D, C)`` -> ``head.weight (C, D)``; text-tower keys are left
    out. The patch projection has no bias (CLIP's ``conv1`` has none).

    Args:
        state: the file's state dict.
        prefix: the tower's prefix (:func:`openclip_prefix`).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        k = key[len(prefix):]
        if k == "class_embedding":
            out["cls_token"] = value.reshape(1, 1, -1)
        elif k == "positional_embedding":
            out["pos_embed"] = value.unsqueeze(0)
        elif k == "proj":
            out["head.weight"] = value.t()
        else:
            for old, new in _RENAMES:
                k = k.replace(old, new)
            out[k] = value
    return out


def _tower_state(obj: Any) -> Any:
    """Where a teacher file keeps the tower: ``"state_dict"``, ``"model"`` or the top level."""
    return obj.get("state_dict", obj.get("model", obj)) if isinstance(obj, dict) else obj


@register_format
class OpenCLIPFormat(CheckpointFormat):
    """A CLIP image tower (teachers only)."""

    name = "open_clip"
    label = "CLIP image tower (open_clip)"
    reads_into = ("teacher",)
    detect_order = 200

    def recognizes(self, probe: Probe) -> bool:
        state = _tower_state(probe.obj)
        return isinstance(state, dict) and openclip_prefix(state) is not None

    def to_timm(self, obj: Any) -> dict[str, torch.Tensor]:
        """The tower of a loaded file in timm's names (a ``timm`` file)."""
        state = _tower_state(obj)
        return openclip_visual_to_timm(state, openclip_prefix(state))
