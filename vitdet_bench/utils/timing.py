"""Timing of training steps for the benchmark scripts (tools/benchmark_*.py)."""

from __future__ import annotations

import time
from typing import Callable

import torch

__all__ = ["time_steps"]


def time_steps(step: Callable[[], None], warmup: int, iters: int, device: torch.device) -> list[float]:
    """Run ``step`` ``warmup + iters`` times; return the wall time of the last ``iters`` (CUDA-synchronised)."""
    times = []
    for i in range(warmup + iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times
