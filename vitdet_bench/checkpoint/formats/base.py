"""What every checkpoint format module fills in: the :class:`CheckpointFormat` interface, and the
pieces the formats share (the loaded file as a :class:`Probe`, the canonical ViT names, the
official layout of a whole method).

A format is a class with facts as class attributes (its name, label, what it reads into, its
official layout) and hooks for what differs (how it is recognised, renamed, which keys it lacks by
design, how a whole-method file is split, how it is written back). The defaults are a plain timm
ViT's; a format module overrides what its format does differently, and says why.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn as nn

from ..io import CheckpointError
from ..report import LoadReport, compress_keys

__all__ = [
    "ENCODER_ONLY",
    "PLAIN_VIT_ENCODER",
    "VIT_DROPS",
    "CanonicalCheckpoint",
    "CheckpointFormat",
    "CheckpointFormatError",
    "DetectorCheckpointFormat",
    "MethodFile",
    "OfficialEncoder",
    "OfficialLayout",
    "Probe",
    "describe_object",
    "drop_reason",
    "find_state_dict",
    "strip_prefix",
    "vit_names",
]


class CheckpointFormatError(CheckpointError):
    """A file whose contents match no known checkpoint format (or not the one asked for)."""


# --- the loaded file -------------------------------------------------------------------------------

def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def find_state_dict(obj: Any) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The state dict inside a loaded checkpoint and the container key it came from ("" when flat;
    ``"model"``, ``"module"`` or ``"state_dict"`` otherwise), or ``(None, "")``."""
    if _is_state_dict(obj):
        return obj, ""
    if isinstance(obj, dict):
        for key in ("model", "module", "state_dict"):
            if _is_state_dict(obj.get(key)):
                return obj[key], key
    return None, ""


def describe_object(obj: Any) -> str:
    """A loaded file's top level in one line (its first 12 entries), for error messages."""
    if not isinstance(obj, dict):
        return f"a {type(obj).__name__}"
    parts = []
    for k, v in list(obj.items())[:12]:
        if isinstance(v, torch.Tensor):
            parts.append(f"{k}: tensor{tuple(v.shape)}")
        elif isinstance(v, dict):
            sub = list(v)[:4]
            parts.append(f"{k}: dict with {len(v)} entries (e.g. {sub})")
        else:
            parts.append(f"{k}: {type(v).__name__}")
    more = f", … ({len(obj)} entries)" if len(obj) > 12 else ""
    return "{" + ", ".join(parts) + more + "}"


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """``state`` without ``prefix`` when every key has it (DDP's ``module.``), else ``state``."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


@dataclass
class Probe:
    """A loaded file as format recognition sees it.

    Args:
        obj: the loaded object.
        state: the state dict inside it (:func:`find_state_dict`), or ``None``.
        container: the key ``state`` came from ("" when flat).
        keys: ``state``'s names, DDP's ``module.`` removed when every name has it.
        model: the model it is loaded into, when the format depends on it (a run checkpoint of
            this project is recognised by the model's own names).
    """

    obj: Any
    state: dict[str, torch.Tensor] | None
    container: str
    keys: list[str]
    model: nn.Module | None = None

    @classmethod
    def of(cls, obj: Any, model: nn.Module | None = None) -> "Probe":
        state, container = find_state_dict(obj)
        keys = list(strip_prefix(state)) if state is not None else []
        return cls(obj, state, container, keys, model)

    @property
    def has_vit_blocks(self) -> bool:
        return any(k.startswith("blocks.") for k in self.keys)


# --- the canonical ViT names -----------------------------------------------------------------------

@dataclass
class CanonicalCheckpoint:
    """Backbone weights in the detection ViT's names, plus what was dropped and renamed.

    ``extras`` keeps the tensors the drop rules removed (cls token, final norm, heads, …), under
    their names after prefix stripping: a detector ignores them, a frozen teacher needs some."""

    state: dict[str, torch.Tensor]
    format: str
    dropped: Counter = field(default_factory=Counter)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


# Tensors a ViT file may carry that a detection backbone never uses, whichever format the file is
# (a fine-tuned MAE-Lite keeps MAE's decoder; this project's exports keep the encoder's cls token
# and final norm for teachers), with the reason shown in reports. They are kept as ``extras``.
VIT_DROPS: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"^cls_token$"), "cls token (the detector has none)"),
    (re.compile(r"^dist_token$"), "distillation token"),
    (re.compile(r"^(norm|fc_norm)\."), "final norm (the detector taps blocks before it)"),
    (re.compile(r"^(head|head_dist)\."), "classification head"),
    (re.compile(r"^mask_token$"), "mask token (pre-training only)"),
    (re.compile(r"^decoder_|^decoder\."), "MAE decoder"),
    (re.compile(r"^lm_head\."), "BEiT visual-token head"),
    (re.compile(r"relative_position_index$"), "rel-pos index buffer (recomputed)"),
)
# BEiT's layer scale is timm's LayerScale: blocks.N.gamma_1 -> blocks.N.ls1.gamma.
_BEIT_GAMMA = re.compile(r"^(blocks\.\d+)\.gamma_([12])$")


def drop_reason(key: str) -> str | None:
    """Why a ViT file's tensor is not a detection backbone's (:data:`VIT_DROPS`), or ``None``."""
    return next((why for pattern, why in VIT_DROPS if pattern.search(key)), None)


def vit_names(state: dict[str, torch.Tensor], out: CanonicalCheckpoint) -> CanonicalCheckpoint:
    """Fill ``out`` from a ViT state dict in timm's names: :data:`VIT_DROPS` counted and kept as
    extras, BEiT's ``gamma_N`` renamed, and whether the position table has a cls slot recorded."""
    for k, v in state.items():
        reason = drop_reason(k)
        if reason is not None:
            out.dropped[reason] += 1
            out.extras[k] = v
            continue
        name = k
        m = _BEIT_GAMMA.match(k)
        if m:
            name = f"{m.group(1)}.ls{m.group(2)}.gamma"
            out.renamed.append((k, name))
        out.state[name] = v  # bias tables keep BEiT's cls rows: the adapter decides per model
    if "pos_embed" in out.state:
        n = out.state["pos_embed"].shape[1]
        out.meta["pos_embed_has_cls"] = math.isqrt(n) ** 2 != n
    return out


# --- a whole method's official layout --------------------------------------------------------------

@dataclass(frozen=True)
class OfficialLayout:
    """How a repository names one method's whole checkpoint (encoders, tokens, heads).

    Args:
        method: the ``method`` of the model here that holds the same tensors ("" for a file that
            holds an encoder only).
        container: the top-level key of the weights (``""``: a flat state dict).
        prefix: the prefix of every weight name (``"module."`` for MoCo v3's DDP-wrapped model).
        encoders: ``(official prefix, our prefix)`` of each encoder.
        parts: ``(official prefix, our prefix)`` of the method's other tensors; matched first.
        resume: how the official code continues from the file (for the log).
        backbone: the encoder's attribute holding the backbone (``"vit"``; ConvMAE: ``"convvit"``).
        drops: ``(official prefix, reason)`` of tensors the file holds and the method here does not
            (MAE-Lite's frozen teacher, rebuilt from its own file): counted in the report, not loaded.
        writable: ``to_official`` can write the layout so that the official code continues from it.
    """

    method: str
    container: str = "model"
    prefix: str = ""
    encoders: tuple[tuple[str, str], ...] = (("", "encoder."),)
    parts: tuple[tuple[str, str], ...] = ()
    resume: str = ""
    backbone: str = "vit"
    drops: tuple[tuple[str, str], ...] = ()
    writable: bool = True


# A file that holds an encoder and nothing else (this project's exports, a detector's ViT).
ENCODER_ONLY = OfficialLayout("", writable=False)


@dataclass(frozen=True)
class OfficialEncoder:
    """The names one official encoder has (for writing back).

    Args:
        pattern: every name it may have.
        required: names it must have.
        what: what it is, for messages.
    """

    pattern: re.Pattern
    required: tuple[str, ...]
    what: str


PLAIN_VIT_ENCODER = OfficialEncoder(
    re.compile(r"^(cls_token|pos_embed|patch_embed\.proj\.(weight|bias)|norm\.(weight|bias)"
               r"|blocks\.\d+\.(norm[12]\.(weight|bias)|attn\.(qkv|proj)\.(weight|bias)|mlp\.fc[12]\.(weight|bias)))$"),
    ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight"),
    "timm's ViT",
)


def _route(state: dict[str, torch.Tensor],
           layout: OfficialLayout) -> tuple[dict[str, dict], dict[str, torch.Tensor], dict[str, int]]:
    """Official names -> ``({our encoder prefix: {backbone-relative name: tensor}}, {our name: tensor},
    {drop reason: count})``: the backbone tensors of each encoder, everything else (cls token, final
    norm, heads) renamed, and what the layout drops."""
    vits: dict[str, dict[str, torch.Tensor]] = {ours: {} for _, ours in layout.encoders}
    plain: dict[str, torch.Tensor] = {}
    dropped: dict[str, int] = {}
    parts = sorted(layout.parts, key=lambda p: -len(p[0]))  # base_encoder.head. before base_encoder.
    for key, value in state.items():
        drop = next((why for theirs, why in layout.drops if key.startswith(theirs)), None)
        if drop is not None:
            dropped[drop] = dropped.get(drop, 0) + 1
            continue
        part = next(((theirs, ours) for theirs, ours in parts if key.startswith(theirs)), None)
        if part is not None:
            plain[part[1] + key[len(part[0]):]] = value
            continue
        enc = next(((theirs, ours) for theirs, ours in layout.encoders if key.startswith(theirs)), None)
        if enc is None:
            plain[key] = value  # no place in this layout: reported unused by the loader
            continue
        name = key[len(enc[0]):]
        if name == "cls_token" or name.startswith("norm."):
            plain[enc[1] + name] = value
        else:
            vits[enc[1]][name] = value
    return vits, plain, dropped


@dataclass
class MethodFile:
    """A whole-method file split by its layout.

    Args:
        encoders: ``{our encoder prefix: {backbone-relative name: tensor}}``.
        plain: the method's other tensors, in our names.
        meta: the file's metadata (this project's exports).
        dropped: ``{reason: count}`` of tensors the layout drops.
    """

    encoders: dict[str, dict[str, torch.Tensor]]
    plain: dict[str, torch.Tensor]
    meta: dict
    dropped: dict[str, int]


# --- the interface ---------------------------------------------------------------------------------

class CheckpointFormat:
    """One checkpoint format: the facts about it and the hooks that read and write it.

    Class attributes:
        name: the format's name (``format=`` of the loaders, ``--from`` / ``--to`` of the tool).
        label: what it is, in messages and in a run's record of its init file.
        reads_into: what the file can initialise: ``"vit"`` (a ViT backbone), ``"convvit"`` (a
            ConvViT), ``"detector"`` (a whole detector), ``"teacher"`` (a frozen teacher only).
        detect_order: place in auto-detection (lower first); formats whose names overlap rely on it.
        shares_names: the file's names are timm's plain ViT names, so any format that also
            shares them (MAE, DeiT, timm) may read it when asked explicitly.
        layout: how a whole-method file is split (``train.init_checkpoint`` of a pre-training run).
        official: ``layout`` is the method's official release (listed in ``METHOD_LAYOUTS``).
        official_encoder: the names its encoder has when written back.
        detector_names: its backbone tensors carry the detection backbone's names already (this
            project's exports): a whole-method file's encoder is taken without renames or drops.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    reads_into: ClassVar[tuple[str, ...]] = ("vit",)
    detect_order: ClassVar[int] = 100
    shares_names: ClassVar[bool] = False
    layout: ClassVar[OfficialLayout] = ENCODER_ONLY
    official: ClassVar[bool] = False
    official_encoder: ClassVar[OfficialEncoder] = PLAIN_VIT_ENCODER
    detector_names: ClassVar[bool] = False

    # -- reading ------------------------------------------------------------------------------------

    def recognizes(self, probe: Probe) -> bool:
        """Whether a loaded file is in this format (asked in :attr:`detect_order`).

        Args:
            probe: the loaded file, its state dict and names (and the model, for run checkpoints).
        """
        return False

    def backbone_state(self, state: dict[str, torch.Tensor], out: CanonicalCheckpoint) -> dict[str, torch.Tensor]:
        """The backbone's tensors of the file's state dict, in timm's ViT names; what the format
        drops on its own is counted in ``out.dropped``. Default: DDP's ``module.`` removed.

        Args:
            state: the file's state dict.
            out: the canonical checkpoint being built (its ``dropped`` and ``renamed`` are filled).
        """
        return strip_prefix(state)

    def canonical(self, obj: Any) -> CanonicalCheckpoint:
        """A loaded file in the detection ViT's names, independent of any model: the format's
        :meth:`backbone_state`, then :func:`vit_names` (the drops every ViT file shares, BEiT's
        layer-scale names).

        Args:
            obj: the loaded file.
        """
        state, _ = find_state_dict(obj)
        out = CanonicalCheckpoint({}, self.name)
        return vit_names(self.backbone_state(state, out), out)

    def canonical_convvit(self, obj: Any) -> CanonicalCheckpoint:
        """A loaded file in a ConvViT's names (formats that read into ``"convvit"``).

        Args:
            obj: the loaded file.
        """
        raise CheckpointFormatError(f"a '{self.name}' file holds no ConvViT")

    def expected_missing(self, key: str) -> bool:
        """Whether a backbone tensor is one the format never provides (it keeps its initial value).

        Default: relative position (ViTDet's decomposed tables, BEiT-style bias tables) is learned
        in fine-tuning only and zero-initialised (the benchmarking paper, for every non-BEiT init).

        Args:
            key: a backbone tensor's name (the detection ViT's or ConvViT's).
        """
        return key.endswith(("rel_pos_h", "rel_pos_w", "relative_position_bias_table"))

    def to_timm(self, obj: Any) -> dict[str, torch.Tensor]:
        """A teacher's file in timm's ViT names (formats that read into ``"teacher"``).

        Args:
            obj: the loaded file.
        """
        raise CheckpointFormatError(f"a '{self.name}' file is not read as a teacher's")

    def origin(self, ckpt: CanonicalCheckpoint) -> str:
        """The format whose :meth:`expected_missing` applies to ``ckpt`` (an export's source).

        Args:
            ckpt: the file in canonical names (its ``meta`` says what produced an export).
        """
        return self.name

    # -- a whole method (continued pre-training) ----------------------------------------------------

    def split_method_file(self, obj: Any) -> MethodFile:
        """A whole-method file split by :attr:`layout` (continued pre-training).

        Args:
            obj: the loaded file.
        """
        state, _ = find_state_dict(obj)
        return self.split_state(state, {})

    def split_state(self, state: dict[str, torch.Tensor], meta: dict) -> MethodFile:
        """A whole-method state dict split by :attr:`layout` (its prefix or DDP's ``module.`` removed).

        Args:
            state: the file's state dict.
            meta: the file's metadata, carried along.
        """
        layout = self.layout
        if layout.prefix and all(k.startswith(layout.prefix) for k in state):
            state = {k[len(layout.prefix):]: v for k, v in state.items()}
        else:
            state = strip_prefix(state)
        vits, plain, dropped = _route(state, layout)
        return MethodFile(vits, plain, meta, dropped)

    def fit_parts(self, plain: dict[str, torch.Tensor], model: nn.Module, report: LoadReport) -> tuple[str, ...]:
        """Adapt the method's other tensors (our names) to ``model`` in place; returns the prefixes of
        model tensors the file is known not to hold. Default: nothing to adapt.

        Args:
            plain: the method's tensors outside its encoders, in our names (changed in place).
            model: the pre-training model they load into.
            report: the load report (conversions and drops are added).
        """
        return ()

    def mismatch_hint(self, report: LoadReport) -> str | None:
        """One sentence for a strict whole-method load that failed: where the missing part is.

        Args:
            report: the failed load's report.
        """
        return None

    # -- writing back -------------------------------------------------------------------------------

    def encoder_names(self, enc: dict[str, torch.Tensor], source: str, where: str) -> dict[str, torch.Tensor]:
        """One encoder's tensors (backbone-relative, ``cls_token``, ``norm.*``) in the official names.

        Args:
            enc: the encoder's tensors.
            source: the file they come from, for messages.
            where: the encoder's name in the model, for messages.
        """
        return dict(enc)

    def check_encoder(self, enc: dict[str, torch.Tensor], source: str, where: str) -> None:
        """Raise when an encoder written back has a name the official model has no place for, or
        lacks one it must have.

        Args:
            enc: the encoder in the official names.
            source: the file they come from, for messages.
            where: the encoder's name in the model, for messages.

        Raises:
            CheckpointError: naming the file, the encoder and the names.
        """
        spec = self.official_encoder
        strange = [k for k in enc if not spec.pattern.match(k)]
        if strange:
            raise CheckpointError(f"{source}: {where} has {', '.join(compress_keys(strange))}, which the official "
                                  f"{self.name} model has no place for (its encoder: {spec.what})")
        absent = [k for k in spec.required if k not in enc]
        if absent:
            raise CheckpointError(f"{source}: {where} has no {', '.join(absent)}, which the official {self.name} "
                                  "model has")

    def official_file(self, weights: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The object to save: the official weights in their container (default ``{container: weights}``).

        Args:
            weights: the official names and tensors.
            state: the model's own state dict (our names), for what the file records besides weights.
        """
        return {self.layout.container: weights}


class DetectorCheckpointFormat(CheckpointFormat):
    """A whole detector's checkpoint: every tensor of the model, its ViT part fitted like a backbone
    (position tables resized to the model), nothing missing by design."""

    reads_into = ("detector",)

    def expected_missing(self, key: str) -> bool:
        return False  # a whole detector's checkpoint carries every backbone tensor

    def detector_state(self, state: dict[str, torch.Tensor], model: nn.Module,
                       source: str) -> tuple[dict[str, torch.Tensor], CanonicalCheckpoint | None, LoadReport]:
        """The file's tensors in the model's names: ``(state, its ViT in canonical names or None (then
        taken from state by the model's ViT prefix), the report so far)``.

        Args:
            state: the file's state dict.
            model: the detector it initialises.
            source: the file, for the report.
        """
        return state, None, LoadReport(source=source, format=self.name, kind="Init checkpoint")

    def file_names(self, keys: list[str], model: nn.Module) -> tuple[list[str], str]:
        """Model keys as the file names them (for messages), and a note saying whose names they are.

        Args:
            keys: the model's names.
            model: the detector (its structure decides the file's names).
        """
        return keys, ""
