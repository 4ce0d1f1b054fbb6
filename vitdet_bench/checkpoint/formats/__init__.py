"""Checkpoint formats: one module per format, each holding everything about it, in one registry.

A format module states how its files are recognised, which keys it renames and drops (and why),
which backbone keys it is known not to have, its official whole-method layout for reading and
writing back, and its label (see :class:`~.base.CheckpointFormat`). Adding a format is one new
module whose class is decorated with :func:`~.registry.register_format`, and one import line below.
The loaders (:mod:`vitdet_bench.checkpoint.backbone`, ``.method``, ``.init``) ask the registry and
its hooks, not format names.
"""

# isort: off
# The registry: one line per format module (importing it registers its formats), in the order
# messages and command-line choices list them.
from . import mae  # noqa: F401
from . import beit  # noqa: F401
from . import mocov3  # noqa: F401
from . import deit  # noqa: F401  (deit, timm)
from . import maelite  # noqa: F401
from . import convmae  # noqa: F401
from . import export  # noqa: F401  (vitdet_bench)
from . import detectron2  # noqa: F401  (vitdet, detectron2)
from . import detector  # noqa: F401
from . import open_clip  # noqa: F401
# isort: on

from .base import (
    ENCODER_ONLY,
    CanonicalCheckpoint,
    CheckpointFormat,
    CheckpointFormatError,
    DetectorCheckpointFormat,
    MethodFile,
    OfficialLayout,
    Probe,
    describe_object,
    find_state_dict,
    strip_prefix,
)
from .detectron2 import (
    DETECTRON2_AUTHOR,
    detectron2_names,
    from_detectron2,
    is_detectron2_checkpoint,
    num_classes_in,
    save_detectron2_checkpoint,
    to_detectron2,
)
from .export import EXPORT_TAG, EXPORT_VERSION, save_backbone_export
from .open_clip import openclip_visual_to_timm
from .registry import (
    CHECKPOINT_FORMATS,
    detect,
    detect_format,
    format_of_method,
    get_format,
    register_format,
    resolve_format,
    to_canonical,
    unrecognized,
)

# What each kind of target reads, in registration order.
FORMATS = CHECKPOINT_FORMATS.names("vit")  # a ViT backbone
DETECTOR_FORMATS = CHECKPOINT_FORMATS.names("detector")  # a whole detector (its ViT fitted too)
CONVVIT_FORMATS = CHECKPOINT_FORMATS.names("convvit")  # a ConvViT backbone
INIT_FORMATS = ("auto",) + DETECTOR_FORMATS + FORMATS + tuple(f for f in CONVVIT_FORMATS if f not in FORMATS)
# The official whole-method layouts (continued pre-training reads them; tools/convert_checkpoint.py
# --to writes the writable ones).
METHOD_LAYOUTS = {f.name: f.layout for f in CHECKPOINT_FORMATS if f.official}
WRITABLE_LAYOUTS = tuple(name for name, layout in METHOD_LAYOUTS.items() if layout.writable)

__all__ = [
    "CHECKPOINT_FORMATS",
    "CONVVIT_FORMATS",
    "DETECTOR_FORMATS",
    "DETECTRON2_AUTHOR",
    "ENCODER_ONLY",
    "EXPORT_TAG",
    "EXPORT_VERSION",
    "FORMATS",
    "INIT_FORMATS",
    "METHOD_LAYOUTS",
    "WRITABLE_LAYOUTS",
    "CanonicalCheckpoint",
    "CheckpointFormat",
    "CheckpointFormatError",
    "DetectorCheckpointFormat",
    "MethodFile",
    "OfficialLayout",
    "Probe",
    "describe_object",
    "detect",
    "detect_format",
    "detectron2_names",
    "find_state_dict",
    "format_of_method",
    "from_detectron2",
    "get_format",
    "is_detectron2_checkpoint",
    "num_classes_in",
    "openclip_visual_to_timm",
    "register_format",
    "resolve_format",
    "save_backbone_export",
    "save_detectron2_checkpoint",
    "strip_prefix",
    "to_canonical",
    "to_detectron2",
    "unrecognized",
]
