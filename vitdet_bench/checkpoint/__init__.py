"""Checkpoints: atomic save / resume, loading weights with a report, pre-trained backbone formats."""

from .backbone import (
    EXPORT_TAG,
    FORMATS,
    CheckpointFormatError,
    LoadReport,
    detect_format,
    load_backbone_checkpoint,
    safe_torch_load,
    save_backbone_export,
    to_canonical,
)
from .checkpointer import (
    CheckpointError,
    Checkpointer,
    atomic_torch_save,
    get_rng_state,
    load_model_weights,
    set_rng_state,
)

__all__ = [
    "EXPORT_TAG",
    "FORMATS",
    "CheckpointFormatError",
    "LoadReport",
    "detect_format",
    "load_backbone_checkpoint",
    "safe_torch_load",
    "save_backbone_export",
    "to_canonical",
    "CheckpointError",
    "Checkpointer",
    "atomic_torch_save",
    "get_rng_state",
    "load_model_weights",
    "set_rng_state",
]
