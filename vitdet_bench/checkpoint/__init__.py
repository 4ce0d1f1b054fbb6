"""Checkpoints: atomic save / resume, initial weights with a report, official and Detectron2 formats.

Modules, in import order (each imports only those before it): ``io`` (file reading and writing),
``report`` (the load report), ``backbone`` (pre-trained ViT formats), ``detectron2`` (Detectron2
detector layout), ``method`` (whole pre-training methods <-> their official files), ``convmae``
(ConvMAE / FastConvMAE files for the ConvViT), ``init`` (``train.init_checkpoint``),
``checkpointer`` (save / resume), ``convert`` (``tools/convert_checkpoint.py``).
"""

from .backbone import (
    DETECTOR_FORMATS,
    EXPORT_TAG,
    FORMATS,
    CheckpointFormatError,
    detect_format,
    load_backbone_checkpoint,
    save_backbone_export,
    to_canonical,
)
from .checkpointer import Checkpointer, get_rng_state, load_model_weights, set_rng_state
from .convert import convert_backbone_file, convert_detector_file, convert_method_file
from .detectron2 import from_detectron2, is_detectron2_checkpoint, save_detectron2_checkpoint, to_detectron2
from .init import INIT_FORMATS, detect_init_format, load_init_checkpoint
from .io import CheckpointError, atomic_torch_save, find_nonfinite, load_detectron2_pickle, read_checkpoint, safe_torch_load
from .method import (
    METHOD_LAYOUTS,
    WRITABLE_LAYOUTS,
    describe_init_source,
    is_method_model,
    load_method_checkpoint,
    to_official,
)
from .report import LoadReport

__all__ = [
    "DETECTOR_FORMATS",
    "EXPORT_TAG",
    "FORMATS",
    "INIT_FORMATS",
    "METHOD_LAYOUTS",
    "WRITABLE_LAYOUTS",
    "CheckpointError",
    "CheckpointFormatError",
    "Checkpointer",
    "LoadReport",
    "atomic_torch_save",
    "find_nonfinite",
    "convert_backbone_file",
    "convert_detector_file",
    "convert_method_file",
    "describe_init_source",
    "detect_format",
    "detect_init_format",
    "from_detectron2",
    "get_rng_state",
    "is_detectron2_checkpoint",
    "is_method_model",
    "load_backbone_checkpoint",
    "load_detectron2_pickle",
    "load_init_checkpoint",
    "load_method_checkpoint",
    "load_model_weights",
    "read_checkpoint",
    "safe_torch_load",
    "save_backbone_export",
    "save_detectron2_checkpoint",
    "set_rng_state",
    "to_canonical",
    "to_detectron2",
    "to_official",
]
