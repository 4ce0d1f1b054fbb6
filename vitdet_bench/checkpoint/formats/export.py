"""``vitdet_bench``: this project's backbone exports (``backbone_*.pth`` of a pre-training run,
``tools/convert_checkpoint.py --from X``'s output).

A file is ``{"format": "vitdet_bench.vit_backbone", "version": 1, "model": state, "meta": {...}}``:
the backbone in the detector's own names (a ViT's ``patch_embed`` / ``blocks`` ..., with the
encoder's cls token and final norm kept for teachers; a ConvViT's ``patch_embed1-4`` / ``blocks1-3``)
and plain-data metadata (method, arch, image and patch size, epochs / iterations, data, lineage), so
it loads with ``weights_only=True``.

Recognised by its tag. Which keys it lacks by design follows what produced it: the converted file's
``source_format``, else the format of the exporting method's official release (a BEiT export has
no absolute positions, an MAE export no bias tables). Exports of a ConvViT (``meta["backbone"] ==
"convvit"``) read into a ConvViT only.
"""

from __future__ import annotations

from typing import Any

import torch

from ..io import atomic_torch_save
from ..report import LoadReport
from .base import (
    CanonicalCheckpoint,
    CheckpointFormat,
    CheckpointFormatError,
    MethodFile,
    Probe,
    describe_object,
    drop_reason,
)
from .convmae import refuse_plain_vit
from .registry import format_of_method, register_format

__all__ = ["EXPORT_TAG", "EXPORT_VERSION", "ExportFormat", "save_backbone_export"]

EXPORT_TAG = "vitdet_bench.vit_backbone"
EXPORT_VERSION = 1


def save_backbone_export(state: dict[str, torch.Tensor], path: str, meta: dict | None = None) -> str:
    """Write backbone weights in the project's format: ``{"format", "version", "model", "meta"}``.

    Args:
        state: the backbone in the detection ViT's (or ConvViT's) names.
        path: the file to write (atomically).
        meta: plain data (method, arch, image and patch size, epochs / iterations, data), so the
            file loads with ``weights_only=True``.

    Returns:
        ``path``.
    """
    data = {"format": EXPORT_TAG, "version": EXPORT_VERSION,
            "model": {k: v.detach().cpu().contiguous() for k, v in state.items()}, "meta": dict(meta or {})}
    atomic_torch_save(data, path)
    return path


@register_format
class ExportFormat(CheckpointFormat):
    """This project's backbone export (a ViT's or a ConvViT's)."""

    name = "vitdet_bench"
    label = "backbone export"
    reads_into = ("vit", "convvit")
    detect_order = 0
    detector_names = True

    def recognizes(self, probe: Probe) -> bool:
        return isinstance(probe.obj, dict) and probe.obj.get("format") == EXPORT_TAG

    def canonical(self, obj: Any) -> CanonicalCheckpoint:
        if not (isinstance(obj, dict) and obj.get("format") == EXPORT_TAG):
            raise CheckpointFormatError(f"not a vitdet_bench backbone export (no format tag): {describe_object(obj)}")
        out = CanonicalCheckpoint({}, self.name, meta=dict(obj.get("meta", {})))
        for k, v in obj["model"].items():
            reason = drop_reason(k)  # exports carry the encoder's cls token and final norm
            if reason is not None:
                out.dropped[reason] += 1
                out.extras[k] = v
            else:
                out.state[k] = v
        return out

    def canonical_convvit(self, obj: Any) -> CanonicalCheckpoint:
        """A ConvViT export as it is; an export of a plain ViT is refused, saying why."""
        meta = dict(obj.get("meta", {}))
        if meta.get("backbone") != "convvit" or "patch_embed1.proj.weight" not in obj["model"]:
            refuse_plain_vit(dict(obj["model"]), obj, f"this vitdet_bench export (method '{meta.get('method', '?')}')")
        return CanonicalCheckpoint(dict(obj["model"]), self.name, meta=meta)

    def origin(self, ckpt: CanonicalCheckpoint) -> str:
        return ckpt.meta.get("source_format") or format_of_method(ckpt.meta.get("method")) or self.name

    def split_method_file(self, obj: Any) -> MethodFile:
        return self.split_state(obj["model"], dict(obj.get("meta") or {}))

    def mismatch_hint(self, report: LoadReport) -> str | None:
        return ("A backbone export holds the encoder only; to continue a run of this project with its heads, "
                "point train.init_checkpoint at the run's model_final.pth.")
