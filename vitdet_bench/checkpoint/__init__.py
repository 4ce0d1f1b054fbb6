"""Checkpoints: atomic save / resume, initial weights with a report, official and Detectron2 formats.

Modules, in import order (each imports only those before it): ``io`` (file reading and writing:
the one read path, :func:`read_checkpoint`), ``report`` (the load report), ``target`` (the ViT /
ConvViT inside a model, pre-training models), ``formats`` (one module per checkpoint format, in one
registry: recognition, renames and drops, expected-missing keys, official layouts, labels),
``adapt`` (fitting canonical weights to a model), ``backbone`` (a pre-trained backbone into a ViT
or ConvViT), ``lineage`` (the record of a run's init file), ``method`` (whole pre-training methods
<-> their official files), ``init`` (``train.init_checkpoint``), ``checkpointer`` (save / resume),
``convert`` (``tools/convert_checkpoint.py``).
"""

from .adapt import adapt_to_convvit, adapt_to_vit, fit_pos_embed
from .backbone import convvit_canonical, detect_convvit_format, load_backbone_checkpoint, load_convvit_checkpoint
from .checkpointer import Checkpointer, get_rng_state, load_model_weights, set_rng_state
from .convert import OUTPUT_LAYOUTS, convert_backbone_file, convert_detector_file, convert_method_file
from .formats import (
    CHECKPOINT_FORMATS,
    CONVVIT_FORMATS,
    DETECTOR_FORMATS,
    EXPORT_TAG,
    FORMATS,
    INIT_FORMATS,
    METHOD_LAYOUTS,
    WRITABLE_LAYOUTS,
    CanonicalCheckpoint,
    CheckpointFormat,
    CheckpointFormatError,
    OfficialLayout,
    detect_format,
    detectron2_names,
    find_state_dict,
    format_of_method,
    from_detectron2,
    get_format,
    is_detectron2_checkpoint,
    register_format,
    resolve_format,
    save_backbone_export,
    save_detectron2_checkpoint,
    to_canonical,
    to_detectron2,
)
from .init import detect_init_format, load_init_checkpoint
from .io import (
    CheckpointError,
    atomic_torch_save,
    atomic_write_text,
    find_nonfinite,
    load_detectron2_pickle,
    read_checkpoint,
    safe_torch_load,
)
from .lineage import INIT_SOURCE_FILE, describe_init_source, lineage_text
from .method import load_method_checkpoint, to_official
from .report import LoadReport
from .target import find_convvit, find_vit, is_method_model

__all__ = [
    "CHECKPOINT_FORMATS",
    "CONVVIT_FORMATS",
    "DETECTOR_FORMATS",
    "EXPORT_TAG",
    "FORMATS",
    "INIT_FORMATS",
    "INIT_SOURCE_FILE",
    "METHOD_LAYOUTS",
    "OUTPUT_LAYOUTS",
    "WRITABLE_LAYOUTS",
    "CanonicalCheckpoint",
    "CheckpointError",
    "CheckpointFormat",
    "CheckpointFormatError",
    "Checkpointer",
    "LoadReport",
    "OfficialLayout",
    "adapt_to_convvit",
    "adapt_to_vit",
    "atomic_torch_save",
    "atomic_write_text",
    "convert_backbone_file",
    "convert_detector_file",
    "convert_method_file",
    "convvit_canonical",
    "describe_init_source",
    "detect_convvit_format",
    "detect_format",
    "detect_init_format",
    "detectron2_names",
    "find_convvit",
    "find_nonfinite",
    "find_state_dict",
    "find_vit",
    "fit_pos_embed",
    "format_of_method",
    "from_detectron2",
    "get_format",
    "get_rng_state",
    "is_detectron2_checkpoint",
    "is_method_model",
    "lineage_text",
    "load_backbone_checkpoint",
    "load_convvit_checkpoint",
    "load_detectron2_pickle",
    "load_init_checkpoint",
    "load_method_checkpoint",
    "load_model_weights",
    "read_checkpoint",
    "register_format",
    "resolve_format",
    "safe_torch_load",
    "save_backbone_export",
    "save_detectron2_checkpoint",
    "set_rng_state",
    "to_canonical",
    "to_detectron2",
    "to_official",
]
