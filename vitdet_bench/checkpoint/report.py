"""The load report every weight-loading path returns and logs.

One table for every source (a pre-trained backbone, this project's detector checkpoint, a
Detectron2 checkpoint): what was loaded, resized (from -> to) or converted, which model tensors the
file did not provide, split into those its format is known not to have (relative position for MAE)
and those it should have had, and which file tensors the model did not take.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tabulate import tabulate

__all__ = ["LoadReport", "compress_keys", "group_keys"]


@dataclass
class LoadReport:
    """What a load did. ``ok`` is False when a tensor is missing that the file's format should
    have provided, or when a file tensor was not used.

    Args:
        source: the file (or a name for an in-memory checkpoint).
        format: the converter that read it (``mae``, ``detectron2``, ``detector`` ...).
        loaded: model keys set from the file unchanged.
        resized: ``(key, file shape, model shape)`` for tensors interpolated to the model.
        converted: ``(key, how)`` for tensors renamed with a layout change (class order, fused
            biases, folded layer scale, shared tables).
        missing_expected: model keys the format never provides (they keep their initial values).
        missing_unexpectedly: model keys the file should have provided and did not.
        dropped: ``{reason: count}`` of file tensors the format's rules discard on purpose.
        unused: ``(key, why)`` for file tensors the model did not take.
        origin: for this project's exports, the method or format that produced the weights.
        kind: what the file is, for the summary line ("Backbone checkpoint", "Init checkpoint").
    """

    source: str
    format: str
    loaded: list[str] = field(default_factory=list)
    resized: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    converted: list[tuple[str, str]] = field(default_factory=list)
    missing_expected: list[str] = field(default_factory=list)
    missing_unexpected: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    unused: list[tuple[str, str]] = field(default_factory=list)
    origin: str = ""
    kind: str = "Backbone checkpoint"

    @property
    def ok(self) -> bool:
        return not self.missing_unexpected and not self.unused

    def add(self, other: "LoadReport", prefix: str = "") -> None:
        """Merge ``other`` (a part of the model under ``prefix``, e.g. the ViT) into this report."""
        self.loaded += [prefix + k for k in other.loaded]
        self.resized += [(prefix + k, a, b) for k, a, b in other.resized]
        self.converted += [(prefix + k, how) for k, how in other.converted]
        self.missing_expected += [prefix + k for k in other.missing_expected]
        self.missing_unexpected += [prefix + k for k in other.missing_unexpected]
        self.unused += [(prefix + k, why) for k, why in other.unused]
        for why, n in other.dropped.items():
            self.dropped[why] = self.dropped.get(why, 0) + n

    def summary(self) -> str:
        origin = f" from {self.origin}" if self.origin else ""
        lines = [
            f"{self.kind} {self.source} (format: {self.format}{origin}): "
            f"{len(self.loaded)} tensors loaded, "
            f"{len(self.resized)} resized, {len(self.converted)} converted, "
            f"{len(self.missing_expected)} missing as expected, {len(self.missing_unexpected)} missing UNEXPECTEDLY, "
            f"{len(self.unused)} checkpoint tensors unused."
        ]
        rows = [(k, "resized", f"{tuple(a)} -> {tuple(b)}") for k, a, b in self.resized]
        rows += [(k, "converted", how) for how, keys in _by_detail(self.converted) for k in group_keys(keys)]
        rows += [(k, "missing (expected for this format)", "") for k in group_keys(self.missing_expected)]
        rows += [(k, "MISSING (unexpected)", "") for k in compress_keys(self.missing_unexpected)]
        rows += [(k, "UNUSED checkpoint tensor", why) for k, why in self.unused]
        rows += [(f"{n} tensors", "dropped by the format's rules", why) for why, n in self.dropped.items()]
        if rows:
            lines.append(tabulate(rows, headers=["key", "status", "detail"]))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _by_detail(rows: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """``(key, detail)`` rows grouped by detail, in first-seen order (a whole momentum encoder
    copied, or another method's decoder unused, is one line per module, not one per tensor)."""
    groups: dict[str, list[str]] = {}
    for key, detail in rows:
        groups.setdefault(detail, []).append(key)
    return list(groups.items())


def group_keys(keys: list[str], limit: int = 12) -> list[str]:
    """:func:`compress_keys`, then, when still long, whole modules counted (a backbone file leaves
    every neck and head tensor at its initial value: ``roi_heads.box_head.* (14 tensors)``; a
    momentum encoder copied from its online side is one line per block name)."""
    compressed = compress_keys(keys)
    if len(compressed) <= limit:
        return compressed
    grouped = [k for k in compressed if _BLOCK_GROUP.search(k)]
    counts: dict[str, int] = {}
    for k in keys:
        if not _BLOCK.match(k):
            module = ".".join(k.split(".")[:2])
            counts[module] = counts.get(module, 0) + 1
    return grouped + [f"{m}.* ({n} tensors)" for m, n in counts.items()]


_BLOCK = re.compile(r"^(.*?\bblocks)\.(\d+)\.(.*)$")
_BLOCK_GROUP = re.compile(r"\bblocks\.(\d+|\{[\d,]+\})\.")


def compress_keys(keys: list[str]) -> list[str]:
    """``blocks.{0,1,2}.attn.rel_pos_h`` style grouping (under any prefix) so reports of deep
    models stay readable."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        m = _BLOCK.match(k)
        key, idx = (f"{m.group(1)}.*.{m.group(3)}", m.group(2)) if m else (k, None)
        groups.setdefault(key, [])
        if idx is not None:
            groups[key].append(idx)
    out = []
    for key, idxs in groups.items():
        out.append(key if not idxs else key.replace("*", idxs[0] if len(idxs) == 1 else "{" + ",".join(idxs) + "}"))
    return out
