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
"""

from __future__ import annotations

from math import prod
from typing import Any

import torch
import torch.nn as nn

__all__ = ["count_flops", "sdpa_flop_jit"]


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
