"""Pure tensor functions for the ViT backbone: windows, position embeddings, relative position."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed

__all__ = [
    "window_partition",
    "window_unpartition",
    "get_abs_pos",
    "get_rel_pos",
    "decomposed_rel_pos_bias",
    "sdpa_attn_bias",
    "attention_dtype",
]


def window_partition(x: torch.Tensor, window_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split a token map into non-overlapping windows, zero-padding bottom/right to a multiple.

    Args:
        x: tokens ``(B, H, W, C)``.
        window_size: window side ``S``.

    Returns:
        windows ``(B * num_windows, S, S, C)`` and the padded size ``(Hp, Wp)``.
    """
    b, h, w, c = x.shape
    pad_h = (window_size - h % window_size) % window_size
    pad_w = (window_size - w % window_size) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window_size, window_size, wp // window_size, window_size, c)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)
    return windows, (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window_size: int, pad_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: reassemble windows and crop the padding away.

    Args:
        windows: ``(B * num_windows, S, S, C)``.
        window_size: window side ``S``.
        pad_hw: padded size ``(Hp, Wp)``.
        hw: original size ``(H, W)``.

    Returns:
        tokens ``(B, H, W, C)``.
    """
    hp, wp = pad_hw
    h, w = hw
    b = windows.shape[0] // (hp * wp // window_size // window_size)
    x = windows.view(b, hp // window_size, wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :].contiguous()
    return x


def get_abs_pos(abs_pos: torch.Tensor, has_cls_token: bool, hw: tuple[int, int]) -> torch.Tensor:
    """Resize a pre-training absolute position table to the current token grid (bicubic).

    Args:
        abs_pos: ``(1, num_positions, C)``, a square grid plus an optional leading cls slot.
        has_cls_token: whether the first entry is the cls token's (it is dropped).
        hw: the target grid ``(H, W)``.

    Returns:
        ``(1, H, W, C)``.
    """
    h, w = hw
    if has_cls_token:
        abs_pos = abs_pos[:, 1:]
    size = int(math.sqrt(abs_pos.shape[1]))
    if size * size != abs_pos.shape[1]:
        raise ValueError(f"pos_embed with {abs_pos.shape[1]} positions is not a square grid")
    if (size, size) != (h, w):
        # antialias=False: the table is only ever upsampled in detection, and this matches
        # Detectron2's get_abs_pos exactly.
        abs_pos = resample_abs_pos_embed(
            abs_pos, new_size=[h, w], old_size=[size, size], num_prefix_tokens=0, antialias=False
        )
    return abs_pos.reshape(1, h, w, -1)


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative positional embeddings for every (query, key) pair along one axis.

    The table is linearly resized when its length differs from ``2 * max(q_size, k_size) - 1``
    (a new input or window size), and coordinates are rescaled when query and key sizes differ.

    Args:
        q_size: number of query positions.
        k_size: number of key positions.
        rel_pos: table ``(L, C)``.

    Returns:
        ``(q_size, k_size, C)``.
    """
    max_rel_dist = int(2 * max(q_size, k_size) - 1)
    if rel_pos.shape[0] != max_rel_dist:
        resized = F.interpolate(
            rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1), size=max_rel_dist, mode="linear"
        )
        resized = resized.reshape(-1, max_rel_dist).permute(1, 0)
    else:
        resized = rel_pos
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    # index_select, not resized[relative]: advanced indexing's CPU backward accumulates repeated
    # offsets in a thread-dependent order (runs would not be bit-reproducible).
    relative = relative.long()
    return resized.index_select(0, relative.reshape(-1)).reshape(*relative.shape, resized.shape[-1])


def decomposed_rel_pos_bias(
    q: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    q_size: tuple[int, int],
    k_size: tuple[int, int],
) -> torch.Tensor:
    """MViTv2 / ViTDet decomposed relative position as an additive attention bias.

    Args:
        q: queries ``(B, q_h * q_w, C)``.
        rel_pos_h: height table ``(Lh, C)``.
        rel_pos_w: width table ``(Lw, C)``.
        q_size: ``(q_h, q_w)``.
        k_size: ``(k_h, k_w)``.

    Returns:
        bias ``(B, q_h * q_w, k_h * k_w)`` to add to the attention logits.
    """
    q_h, q_w = q_size
    k_h, k_w = k_size
    rh = get_rel_pos(q_h, k_h, rel_pos_h)
    rw = get_rel_pos(q_w, k_w, rel_pos_w)
    b, _, dim = q.shape
    r_q = q.reshape(b, q_h, q_w, dim)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh)
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw)
    bias = rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
    return bias.reshape(b, q_h * q_w, k_h * k_w)


# The memory-efficient CUDA kernel reads an additive bias whose every stride but the last is a
# multiple of this many elements (PyTorch's ``preprocess_mask``); otherwise PyTorch pads a copy of
# the bias on every call.
SDPA_BIAS_ALIGNMENT = 8


def attention_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a linear layer gives for input ``x``: the autocast dtype when autocast is on for
    ``x``'s device, else ``x``'s own."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


def _sdpa_aligned(bias: torch.Tensor) -> bool:
    strides = bias.stride()
    return strides[-1] == 1 and all(s % SDPA_BIAS_ALIGNMENT == 0 for s in strides[:-1])


def sdpa_attn_bias(bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """An additive attention bias in the form SDPA's fused kernels take without copying it.

    Four dimensions (the fused CPU kernel accepts only 2-D or 4-D masks and otherwise falls back
    to the math kernel), ``dtype`` (the queries'), and a last dimension padded to a multiple of
    :data:`SDPA_BIAS_ALIGNMENT` then sliced back, so its rows are aligned for the CUDA
    memory-efficient kernel. An already conforming bias is returned as it is, so a bias shared by
    several blocks is converted once per forward pass.

    Args:
        bias: ``(heads, L, S)`` or ``(B, heads, L, S)`` (broadcastable dimensions of size 1 allowed).
        dtype: the attention's dtype.

    Returns:
        ``(B or 1, heads or 1, L, S)``, values unchanged.
    """
    if bias.dim() == 3:
        bias = bias[None]
    if bias.dim() != 4:
        raise ValueError(f"attention bias must be (heads, L, S) or (B, heads, L, S), got shape {tuple(bias.shape)}")
    bias = bias.to(dtype)
    if _sdpa_aligned(bias):
        return bias
    length = bias.shape[-1]
    pad = (-length) % SDPA_BIAS_ALIGNMENT
    if pad == 0:
        return bias.contiguous()  # contiguous with an aligned length: every stride is a multiple
    # The padded copy is contiguous with rows of length + pad elements; the slice keeps that layout.
    return F.pad(bias, (0, pad))[..., :length]
