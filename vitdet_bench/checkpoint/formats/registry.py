"""The registry of checkpoint formats, in the shape of Detectron2's ``Registry`` (fvcore's) and timm's
``register_model``: each format module decorates its class with :func:`register_format`, and
``formats/__init__.py`` imports the modules, one line each, in the order messages and command-line
choices list them.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch.nn as nn

from .base import CanonicalCheckpoint, CheckpointFormat, CheckpointFormatError, Probe, describe_object, find_state_dict

__all__ = [
    "CHECKPOINT_FORMATS",
    "FormatRegistry",
    "detect",
    "detect_format",
    "format_of_method",
    "get_format",
    "register_format",
    "resolve_format",
    "to_canonical",
    "unrecognized",
]


class FormatRegistry:
    """Format name -> the :class:`CheckpointFormat` (one instance of each registered class).

    Args:
        name: what the registry holds, for messages.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._formats: dict[str, CheckpointFormat] = {}

    def register(self, cls: type[CheckpointFormat]) -> type[CheckpointFormat]:
        """Register a format class under its ``name`` (usable as a class decorator).

        Raises:
            ValueError: the class has no name, or another format has it.
        """
        if not cls.name:
            raise ValueError(f"{cls.__name__} has no name: set the class attribute 'name'")
        if cls.name in self._formats:
            raise ValueError(f"a format named {cls.name!r} is already in the {self._name} "
                             f"({type(self._formats[cls.name]).__name__})")
        self._formats[cls.name] = cls()
        return cls

    def get(self, name: str) -> CheckpointFormat:
        """The format named ``name``.

        Raises:
            KeyError: no such format (the message lists the known ones).
        """
        try:
            return self._formats[name]
        except KeyError:
            known = tuple(self._formats)
            raise KeyError(f"no checkpoint format {name!r} in the {self._name}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._formats

    def __iter__(self) -> Iterator[CheckpointFormat]:
        return iter(self._formats.values())

    def names(self, reads_into: str) -> tuple[str, ...]:
        """The formats that read into ``reads_into`` (``"vit"``, ``"convvit"``, ``"detector"``), in
        registration order."""
        return tuple(f.name for f in self if reads_into in f.reads_into)


CHECKPOINT_FORMATS = FormatRegistry("checkpoint format registry")
register_format = CHECKPOINT_FORMATS.register


def get_format(name: str) -> CheckpointFormat:
    """The registered format named ``name`` (:meth:`FormatRegistry.get`)."""
    return CHECKPOINT_FORMATS.get(name)


def detect(probe: Probe, reads_into: tuple[str, ...]) -> CheckpointFormat | None:
    """The first format (in :attr:`~CheckpointFormat.detect_order`) among those reading into any of
    ``reads_into`` that recognises the file, or ``None``."""
    candidates = [f for f in CHECKPOINT_FORMATS if set(f.reads_into) & set(reads_into)]
    return next((f for f in sorted(candidates, key=lambda f: f.detect_order) if f.recognizes(probe)), None)


def detect_format(obj: Any, model: nn.Module | None = None) -> str:
    """Best guess of a loaded ViT checkpoint's format, one of the formats that read into a ViT.

    MAE's encoder-only release, DeiT and timm share key names; the container tells them apart
    (MAE and DeiT wrap in ``"model"``, DeiT keeps its classifier, timm files are flat). The guess
    only changes which misses count as expected; pass ``format=`` to be explicit.

    Raises:
        CheckpointFormatError: no state dict in the file, or no ViT blocks in it (naming what it holds).
    """
    probe = Probe.of(obj, model)
    found = detect(probe, ("vit",))
    if found is None:
        raise CheckpointFormatError(unrecognized(probe))
    return found.name


def unrecognized(probe: Probe) -> str:
    """Why no ViT format recognises a file: it holds no state dict, or no ViT blocks."""
    if probe.state is None:
        return f"no state dict found: the file holds {describe_object(probe.obj)}"
    return ("the state dict has no ViT blocks ('blocks.N.*'), so it matches none of "
            f"{CHECKPOINT_FORMATS.names('vit')}: found {describe_object(probe.state)}")


def format_of_method(method: str) -> str | None:
    """The format of a pre-training method's official release (whose layout holds ``method``), or
    ``None`` when it has none here."""
    return next((f.name for f in CHECKPOINT_FORMATS if f.official and f.layout.method == method), None)


def resolve_format(obj: Any, format: str = "auto") -> str:
    """The format to read a loaded ViT checkpoint as: the detected one for ``"auto"``, else ``format``
    when it agrees with the file's names (MAE, DeiT and timm share names, so any of the three may
    read the others' files; the other formats may not).

    Raises:
        ValueError: ``format`` is not a ViT format.
        CheckpointFormatError: the file is not in ``format`` (naming both and the file's keys).
    """
    names = CHECKPOINT_FORMATS.names("vit")
    if format not in ("auto",) + names:
        raise ValueError(f"format must be 'auto' or one of {names}, got {format!r}")
    detected = detect_format(obj)
    if format == "auto":
        return detected
    if format != detected and not (get_format(format).shares_names and get_format(detected).shares_names):
        state, _ = find_state_dict(obj)
        raise CheckpointFormatError(
            f"asked to read it as '{format}', but the detected format is '{detected}' "
            f"(keys: {describe_object(state or obj)})"
        )
    return format


def to_canonical(obj: Any, format: str = "auto") -> CanonicalCheckpoint:
    """A loaded ViT checkpoint in the detection ViT's key names (its format's
    :meth:`~CheckpointFormat.canonical`), independent of any model.

    Args:
        obj: the loaded file.
        format: ``"auto"`` or a ViT format (checked against the file's names).
    """
    return get_format(resolve_format(obj, format)).canonical(obj)
