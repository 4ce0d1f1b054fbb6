"""BEiT-style relative position bias tables: lookup, runtime resizing and checkpoint resizing.

A table holds one learned bias per head for every relative offset inside a ``Wh x Ww`` window:
``(2Wh - 1) * (2Ww - 1)`` rows. BEiT's tables append 3 rows for the cls token (cls->token,
token->cls, cls->cls, :data:`NUM_CLS_ENTRIES`), learned with the rest. A table built with
``cls_token=True`` keeps them (pre-training with a cls token, as BEiT); the detector has no cls
token, so its tables have none and the checkpoint loader drops them (and reports it). Offsets
are indexed exactly as BEiT / timm do (timm's ``gen_relative_position_index``), so tables load
without re-ordering.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.beit import gen_relative_position_index

__all__ = [
    "NUM_CLS_ENTRIES",
    "RelativePositionBias",
    "relative_position_bias",
    "table_side",
    "resize_rel_pos_table",
    "geometric_offsets",
    "split_cls_entries",
]

# BEiT's extra rows at the end of a table, in order: cls->token, token->cls, cls->cls.
NUM_CLS_ENTRIES = 3


def table_side(window_size: tuple[int, int]) -> tuple[int, int]:
    """Rows / columns of the 2-D offset grid of a window: ``(2Wh - 1, 2Ww - 1)``."""
    return 2 * window_size[0] - 1, 2 * window_size[1] - 1


def _build_index(window_size: tuple[int, int], device: torch.device, with_cls: bool) -> torch.Tensor:
    # timm's index has the cls token's row and column first, pointing at the 3 extra rows;
    # without a cls token they are dropped.
    index = gen_relative_position_index(window_size)
    return (index if with_cls else index[1:, 1:]).contiguous().to(device)


@lru_cache(maxsize=32)
def _cached_index(window_size: tuple[int, int], device: torch.device, with_cls: bool) -> torch.Tensor:
    # Cached per device, so an eager forward pass does not rebuild or copy it. Built outside
    # inference mode even when first asked for inside it: a cached inference tensor could not be
    # used by a later training step's backward.
    with torch.inference_mode(False):
        return _build_index(window_size, device, with_cls)


def _index(window_size: tuple[int, int], device: torch.device, with_cls: bool) -> torch.Tensor:
    # torch.compile traces the construction into the graph (a constant there) instead of a cache.
    if torch.compiler.is_compiling():
        return _build_index(window_size, device, with_cls)
    return _cached_index(window_size, device, with_cls)


def split_cls_entries(table: torch.Tensor, window: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(offset rows, cls rows or None)`` of a table for ``window``, with or without BEiT's cls rows.

    Raises:
        ValueError: when the row count fits neither layout.
    """
    rows, cols = table_side(window)
    if table.shape[0] == rows * cols:
        return table, None
    if table.shape[0] == rows * cols + NUM_CLS_ENTRIES:
        return table[:-NUM_CLS_ENTRIES], table[-NUM_CLS_ENTRIES:]
    raise ValueError(
        f"a bias table for window {tuple(window)} has {rows * cols} rows (+ {NUM_CLS_ENTRIES} with a cls token), "
        f"got shape {tuple(table.shape)}"
    )


def relative_position_bias(
    table: torch.Tensor, table_window: tuple[int, int], window: tuple[int, int], with_cls: bool = False
) -> torch.Tensor:
    """Gather the attention bias for a ``window`` of ``N = Wh * Ww`` tokens (and a cls token).

    When the attended window differs from the one the table was built for (a global block run at
    another input size), the 2-D offset table is resized bicubically on the fly, which keeps
    gradients flowing to the stored table; the cls rows are offset-free and kept as they are.
    Checkpoint loading uses BEiT's geometric resize instead (:func:`resize_rel_pos_table`).

    Args:
        table: ``((2Th - 1) * (2Tw - 1) [+ 3], num_heads)``; the 3 cls rows are optional.
        table_window: the window ``(Th, Tw)`` the table describes.
        window: the window ``(Wh, Ww)`` being attended.
        with_cls: the tokens start with a cls token: the bias gets its row and column, from
            the table's cls rows (BEiT: cls->token in row 0, token->cls in column 0, cls->cls).

    Returns:
        ``(num_heads, N, N)``, or ``(num_heads, N + 1, N + 1)`` with ``with_cls``.
    """
    window = (int(window[0]), int(window[1]))
    offsets, cls_rows = split_cls_entries(table, tuple(table_window))
    if with_cls and cls_rows is None:
        raise ValueError(f"a cls token needs a table with {NUM_CLS_ENTRIES} cls rows; this one has none")
    if window != tuple(table_window):
        src = table_side(table_window)
        dst = table_side(window)
        grid = offsets.t().reshape(1, -1, *src)
        offsets = F.interpolate(grid, size=dst, mode="bicubic", align_corners=False).reshape(-1, dst[0] * dst[1]).t()
    table = torch.cat((offsets, cls_rows)) if with_cls else offsets
    index = _index(window, table.device, with_cls)
    n = index.shape[0]
    # index_select, not table[index]: advanced indexing's CPU backward accumulates the repeated
    # offsets in a thread-dependent order, so two identical runs drifted apart; index_select's
    # backward (index_add) is deterministic.
    return table.index_select(0, index.view(-1)).view(n, n, -1).permute(2, 0, 1)


class RelativePositionBias(nn.Module):
    """A learned bias table for one window size (shared by several blocks, BENCH-style; BEiT's
    shared table in pre-training).

    Zero-initialised, cls rows included, as in BEiT's and the benchmarking paper's code (a BEiT
    checkpoint overwrites the table when there is one).

    Args:
        window_size: ``(Wh, Ww)`` the table covers.
        num_heads: attention heads.
        cls_token: keep BEiT's 3 cls rows (cls->token, token->cls, cls->cls) after the offset
            rows, as ``timm.models.beit.RelativePositionBias`` does: ``(2Wh-1)(2Ww-1) + 3`` rows.
    """

    def __init__(self, window_size: tuple[int, int], num_heads: int, cls_token: bool = False) -> None:
        super().__init__()
        self.window_size = (int(window_size[0]), int(window_size[1]))
        self.cls_token = cls_token
        rows, cols = table_side(self.window_size)
        extra = NUM_CLS_ENTRIES if cls_token else 0
        self.relative_position_bias_table = nn.Parameter(torch.zeros(rows * cols + extra, num_heads))

    def forward(self, window: tuple[int, int] | None = None, with_cls: bool = False) -> torch.Tensor:
        """The ``(num_heads, N, N)`` bias for ``window`` (default: the table's own), or
        ``(num_heads, N + 1, N + 1)`` for tokens that start with a cls token (``with_cls``)."""
        return relative_position_bias(
            self.relative_position_bias_table, self.window_size, window or self.window_size, with_cls=with_cls
        )


def geometric_offsets(src_side: int, dst_side: int) -> np.ndarray:
    """BEiT's source sample positions for resizing one axis of a table from ``src_side`` to
    ``dst_side`` offsets: a geometric progression with ratio ``q`` chosen by bisection so that the
    outermost source offset lands on the outermost destination offset. Samples are dense near 0
    (nearby offsets keep their learned values) and stretched far out.
    """

    def progression(ratio: float, n: int) -> float:
        return (1.0 - ratio**n) / (1.0 - ratio)

    half_src, half_dst = src_side // 2, dst_side // 2
    left, right = 1.01, 1.5
    while right - left > 1e-6:
        q = (left + right) / 2.0
        if progression(q, half_src) > half_dst:
            right = q
        else:
            left = q
    dis, cur = [], 1.0
    for i in range(half_src):
        dis.append(cur)
        cur += q ** (i + 1)
    return np.array([-d for d in reversed(dis)] + [0.0] + dis)


def resize_rel_pos_table(
    table: torch.Tensor,
    src_window: tuple[int, int],
    dst_window: tuple[int, int],
    mode: str = "cubic",
) -> torch.Tensor:
    """Resize a bias table to another window with BEiT's geometric-progression interpolation.

    BEiT fits ``scipy.interpolate.interp2d(kind="cubic")`` per head on the geometric source grid;
    ``interp2d`` was removed in SciPy 1.14. On a rectilinear grid it fits an interpolating
    (s = 0) bicubic spline, which is what ``RectBivariateSpline(kx=3, ky=3, s=0)`` computes, so
    ``mode="cubic"`` reproduces BEiT. ``mode="linear"`` is timm's default
    (``resize_rel_pos_bias_table`` without ``TIMM_USE_SCIPY_INTERP``).

    Args:
        table: ``((2Sh - 1) * (2Sw - 1), num_heads)`` without cls rows.
        src_window: ``(Sh, Sw)``.
        dst_window: ``(Dh, Dw)``.
        mode: "cubic" (BEiT) or "linear" (timm).

    Returns:
        ``((2Dh - 1) * (2Dw - 1), num_heads)`` in ``table``'s dtype.
    """
    from scipy.interpolate import RectBivariateSpline

    if mode not in ("cubic", "linear"):
        raise ValueError(f"resize mode must be 'cubic' or 'linear', got {mode!r}")
    src = table_side(tuple(src_window))
    dst = table_side(tuple(dst_window))
    if table.ndim != 2 or table.shape[0] != src[0] * src[1]:
        raise ValueError(
            f"a table for window {tuple(src_window)} has {src[0] * src[1]} rows, got shape {tuple(table.shape)}"
        )
    if src == dst:
        return table.clone()
    ys = geometric_offsets(src[0], dst[0])
    xs = geometric_offsets(src[1], dst[1])
    dy = np.arange(-(dst[0] // 2), dst[0] // 2 + 1, dtype=np.float64)
    dx = np.arange(-(dst[1] // 2), dst[1] // 2 + 1, dtype=np.float64)
    k = 3 if mode == "cubic" else 1
    values = table.detach().double().cpu().numpy()
    heads = []
    for h in range(values.shape[1]):
        # Rows of the flattened table are the height offset, columns the width offset.
        spline = RectBivariateSpline(ys, xs, values[:, h].reshape(src), kx=k, ky=k, s=0)
        heads.append(spline(dy, dx).reshape(-1))
    return torch.from_numpy(np.stack(heads, axis=1)).to(dtype=table.dtype, device=table.device)
