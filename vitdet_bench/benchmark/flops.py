"""FLOPs, counted one way everywhere: the benchmark report's ``backbone GFLOPs`` and
``tools/benchmark_backbone.py``.

The count is fvcore's ``FlopCountAnalysis``, the convention of Detectron2 and the ViTDet paper: one
multiply-add is one flop; convolutions, linear layers and matrix products are counted, norms by
fvcore's estimate (5 flops per element with an affine, 4 without), element-wise operations and
softmax are not. fvcore has no handler for ``aten::scaled_dot_product_attention``, the fused
attention kernel the ViT uses by default, and skips what it has no handler for: without one the
attention's two batched products would be missing from every count. :func:`sdpa_flop_jit` is that
handler (written here because fvcore does not have it); it counts what fvcore's matmul handler
counts on the explicit path, so the number does not depend on ``use_sdpa``.

A measured step turns the count into achieved TFLOP/s (:func:`achieved_tflops`: two flops per
multiply-add, as hardware peaks count them; a training step is three forward passes' worth,
forward plus a backward twice as long) and model-FLOP utilisation against the GPU's dense bf16 peak
(:func:`bf16_peak_tflops`, from the vendor's data sheets; an unknown GPU has none, so no MFU).
"""

from __future__ import annotations

import re
from math import prod
from typing import Any

import torch
import torch.nn as nn

__all__ = ["BF16_PEAK_TFLOPS", "achieved_tflops", "bf16_peak_tflops", "count_flops", "mfu", "sdpa_flop_jit"]

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from NVIDIA's data sheets: (pattern on
# torch.cuda.get_device_properties().name, the card as the table names it, peak). First match wins;
# the variants with other clocks or power (H100 NVL, H200 NVL) are listed without a peak, so they
# never borrow the SXM number.
BF16_PEAK_TFLOPS: list[tuple[str, str, float | None]] = [
    (r"H100.*PCIe", "H100 PCIe", 756.0),
    (r"H100.*NVL", "H100 NVL", None),
    (r"H100", "H100 SXM", 989.0),  # "NVIDIA H100 80GB HBM3"
    (r"H200.*NVL", "H200 NVL", None),
    (r"H200", "H200", 989.0),
    (r"A100", "A100", 312.0),  # SXM and PCIe alike
]


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """Multiply-adds of ``scaled_dot_product_attention(q, k, v, ...)``: ``q k^T`` and ``attn v``.

    With ``q`` (..., N, d), ``k`` (..., M, d) and ``v`` (..., M, dv): ``prod(...) * N * M * (d + dv)``;
    the scale, the additive mask and softmax are element-wise (not counted, as on the explicit path).
    """
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(inputs[i]) for i in range(3))
    *batch, n, d = q
    return prod(batch) * n * k[-2] * (d + v[-1])


def count_flops(model: nn.Module, inputs: Any) -> float:
    """fvcore's FLOP count of ``model(inputs)`` (one forward pass; ``inputs`` a tensor or a tuple of
    arguments), fused attention included. Runs without gradients; the model's mode is kept."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs)
    analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_jit)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        return float(analysis.total())


def bf16_peak_tflops(gpu_name: str | None) -> tuple[str | None, float | None]:
    """``(card, dense bf16 peak TFLOP/s)`` of a GPU by its CUDA name (``None`` peak: not known here).

    Args:
        gpu_name: ``torch.cuda.get_device_properties(device).name``; ``None`` (a CPU) gives
            ``(None, None)``.
    """
    for pattern, card, peak in BF16_PEAK_TFLOPS if gpu_name else []:
        if re.search(pattern, gpu_name):
            return card, peak
    return None, None


def achieved_tflops(gflops_per_image: float, s_per_image: float, training: bool) -> float:
    """TFLOP/s a measured step achieved on a counted model.

    Args:
        gflops_per_image: :func:`count_flops` of one image's forward pass / 1e9 (multiply-adds).
        s_per_image: measured seconds per image.
        training: forward plus backward (3x the forward's work) instead of the forward alone.
    """
    if s_per_image <= 0:
        raise ValueError(f"s_per_image must be > 0, got {s_per_image}")
    return 2 * gflops_per_image * (3 if training else 1) / s_per_image / 1e3


def mfu(tflops: float | None, peak_tflops: float | None) -> float | None:
    """Model-FLOP utilisation, ``tflops / peak_tflops`` (``None`` when either is unknown)."""
    if tflops is None or not peak_tflops:
        return None
    return tflops / peak_tflops
