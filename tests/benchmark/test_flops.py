"""The one FLOP counter (``vitdet_bench.benchmark.flops``) against the analytic count of a plain
ViT, and the same number with the fused attention kernel on or off."""

import math

import pytest
import torch

from vitdet_bench.benchmark.flops import count_flops
from vitdet_bench.modeling import ViT

P, D, HEADS, DEPTH = 16, 64, 4, 4


def analytic_vit_flops(size: int, window: int, global_blocks: list[int]) -> int:
    """One image through the ViT, in fvcore's convention (one multiply-add = one flop; LayerNorm
    5 flops per element; biases, the position add, softmax and the residuals not counted).

    Patch embed: a 16x16 stride-16 conv, ``N * D * 3 * 16 * 16``. Per block, with ``N`` tokens
    attended together (a window of ``window ** 2`` padded tokens, or the whole grid): qkv and proj
    ``4 * T * D**2`` over the ``T`` tokens the block projects (the padded ones too in window blocks),
    attention ``2 * N**2 * D`` per window (``q k^T`` and ``attn v``), the MLP ``2 * 4 * D**2`` per
    token and two norms on the grid's tokens.
    """
    grid = size // P
    tokens = grid * grid
    total = tokens * D * 3 * P * P
    for i in range(DEPTH):
        if i in global_blocks:
            attended, windows = tokens, 1
        else:
            per_side = math.ceil(grid / window)
            attended, windows = window * window, per_side * per_side
        projected = attended * windows
        total += 4 * projected * D * D + windows * 2 * attended**2 * D
        total += tokens * 2 * 4 * D * D + 2 * 5 * tokens * D
    return total


@pytest.mark.parametrize("size,window,global_blocks",
                         [(128, 4, [1, 3]), (96, 4, [3]), (128, 8, []), (64, 4, [0, 1, 2, 3])])
def test_vit_count_equals_the_analytic_count(size, window, global_blocks):
    vit = ViT(img_size=size, patch_size=P, embed_dim=D, depth=DEPTH, num_heads=HEADS, window_size=window,
              window_block_indexes=[i for i in range(DEPTH) if i not in global_blocks], pretrain_img_size=size,
              use_sdpa=True).eval()
    x = torch.randn(1, 3, size, size)
    assert count_flops(vit, x) == analytic_vit_flops(size, window, global_blocks)


@pytest.mark.parametrize("extra",
                         [{}, {"use_rel_pos": True}, {"rel_pos_bias": "shared"}, {"mask_window_padding": True}])
def test_fused_and_explicit_attention_count_the_same(extra):
    kw = dict(img_size=96, patch_size=P, embed_dim=D, depth=2, num_heads=HEADS, window_size=4, window_block_indexes=[0],
              pretrain_img_size=96, **extra)
    x = torch.randn(1, 3, 96, 96)
    fused = count_flops(ViT(use_sdpa=True, **kw).eval(), x)
    explicit = count_flops(ViT(use_sdpa=False, **kw).eval(), x)
    assert fused == explicit
    # Without the handler fvcore would drop the attention products of the fused path.
    from fvcore.nn import FlopCountAnalysis

    assert FlopCountAnalysis(ViT(use_sdpa=True, **kw).eval(), x).unsupported_ops_warnings(False).total() < fused


def test_bf16_peaks_by_gpu_name_and_achieved_tflops():
    from vitdet_bench.benchmark.flops import achieved_tflops, bf16_peak_tflops, mfu

    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == ("H100 SXM", 989.0)
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == ("H100 PCIe", 756.0)
    assert bf16_peak_tflops("NVIDIA H200") == ("H200", 989.0)
    assert bf16_peak_tflops("NVIDIA A100-SXM4-80GB") == ("A100", 312.0)
    assert bf16_peak_tflops("NVIDIA H100 NVL") == ("H100 NVL", None)  # another clock: not the SXM peak
    assert bf16_peak_tflops("NVIDIA L4") == (None, None) and bf16_peak_tflops(None) == (None, None)
    # 500 G multiply-adds per image = 1 TFLOP forward; training is 3 forwards' worth.
    assert achieved_tflops(500.0, 0.01, training=False) == pytest.approx(100.0)
    assert achieved_tflops(500.0, 0.01, training=True) == pytest.approx(300.0)
    assert mfu(300.0, 989.0) == pytest.approx(300 / 989) and mfu(300.0, None) is None and mfu(None, 989.0) is None
    with pytest.raises(ValueError, match="s_per_image must be > 0"):
        achieved_tflops(1.0, 0.0, training=False)


def test_backbone_flops_of_a_compiled_backbone_count_its_eager_code():
    """tools/benchmark_detector.py --flops counts model.backbone even when train.compile compiled it
    in place: the count is the eager module's, and nothing is compiled by counting."""
    import torch.nn as nn

    from vitdet_bench.benchmark.throughput import backbone_flops
    from vitdet_bench.engine.speed import compile_module

    vit = ViT(img_size=64, patch_size=P, embed_dim=32, depth=2, num_heads=2, window_size=2, window_block_indexes=[0],
              pretrain_img_size=64)
    holder = nn.Module()
    holder.backbone = vit
    holder.train()
    eager = count_flops(vit.eval(), torch.zeros(1, 3, 64, 64))
    vit.train()
    compile_module(holder, {"enabled": True, "module": "backbone", "backend": "eager"})
    counted = backbone_flops(holder, 64, torch.device("cpu"))
    assert counted == {"gflops_per_image": eager / 1e9, "module": "model.backbone", "input": [1, 3, 64, 64]}
    assert holder.training and vit.training  # the mode is restored
    assert backbone_flops(holder, None, torch.device("cpu")) is None
