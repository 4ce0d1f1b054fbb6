"""Timing and peak memory for the benchmark scripts (tools/benchmark_*.py).

CUDA work is asynchronous: a wall-clock interval means something only when the device has finished
the work queued before it starts and the work of the step before it ends, so every step here is
bracketed by ``torch.cuda.synchronize`` (the protocol of Detectron2's and the ViTDet paper's
per-image inference times).
"""

from __future__ import annotations

import resource
import time
from typing import Callable

import torch

__all__ = ["peak_memory_mb", "reset_peak_memory", "synchronize", "time_steps"]


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], None], warmup: int, iters: int, device: torch.device) -> list[float]:
    """Run ``step`` ``warmup + iters`` times; return the wall time of the last ``iters``
    (each synchronised on CUDA). With ``warmup=0`` every call is timed, the first included."""
    times = []
    for i in range(warmup + iters):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def reset_peak_memory(device: torch.device) -> float:
    """Start a new peak-memory window; returns the CPU baseline (max RSS so far, MiB; 0 on CUDA)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_mb(device: torch.device, baseline: float = 0.0) -> float:
    """Peak memory since :func:`reset_peak_memory`: ``torch.cuda.max_memory_allocated`` on CUDA
    (what Detectron2 logs as ``max_mem``); on the CPU the growth of the process's max RSS over
    ``baseline``, which a process cannot reset (0 when an earlier phase already peaked higher)."""
    if device.type == "cuda":
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    return max(0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline)
