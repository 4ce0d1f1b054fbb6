"""Small torch.distributed helpers that also work when distributed is not initialised."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

__all__ = [
    "all_gather",
    "all_reduce_max",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "reduce_dict",
    "synchronize",
    "unwrap_model",
]

_LOCAL_RANK = 0


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_local_rank() -> int:
    return _LOCAL_RANK


def set_local_rank(rank: int) -> None:
    global _LOCAL_RANK
    _LOCAL_RANK = rank


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes (no-op when not distributed)."""
    if get_world_size() > 1:
        dist.barrier()


def all_gather(data: Any) -> list[Any]:
    """Gather a picklable object from every rank; returns the list ordered by rank."""
    if get_world_size() == 1:
        return [data]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, data)
    return out


def reduce_dict(values: dict[str, float]) -> dict[str, float]:
    """Average a dict of floats over all ranks (same keys on every rank)."""
    if get_world_size() == 1:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    t /= get_world_size()
    return {k: float(v) for k, v in zip(keys, t.cpu().tolist())}


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module a ``DistributedDataParallel`` wraps (``model`` itself when not wrapped): what
    checkpoints save and load, and what hooks call methods on."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of a small tensor over all ranks (returned on the CPU)."""
    if get_world_size() == 1:
        return t
    t = t.cuda() if dist.get_backend() == "nccl" else t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.cpu()
