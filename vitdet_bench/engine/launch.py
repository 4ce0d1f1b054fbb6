"""Start one process per device with torch.distributed (NCCL on GPUs, Gloo on the CPU).

``launch`` spawns the workers itself (Detectron2's ``--num-gpus / --num-machines / --machine-rank
/ --dist-url``); under ``torchrun`` (or a submitit job, which exports the same variables, see
``submit.py``) it reads the rank and world size from the environment instead.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..utils import comm

__all__ = ["launch", "find_free_port"]

logger = logging.getLogger(__name__)
DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def _under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def launch(
    main_func: Callable[..., Any],
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = None,
    args: tuple = (),
    timeout: datetime.timedelta = DEFAULT_TIMEOUT,
) -> None:
    """Run ``main_func(*args)`` in every process of the job.

    Args:
        main_func: the per-process entry point.
        num_gpus_per_machine: processes per machine (GPUs; on a CPU-only machine, Gloo workers).
        num_machines: machines in the job.
        machine_rank: this machine's index.
        dist_url: ``tcp://host:port`` of machine 0, or ``"auto"`` for a free local port.
        args: arguments for ``main_func``.
    """
    if _under_torchrun():
        local_rank = int(os.environ["LOCAL_RANK"])
        if torch.cuda.is_available():
            # torchrun and submitit show every process all of the machine's GPUs; a scheduler that
            # binds one GPU per task shows each process only its own (MAE's rank % device count).
            local_rank %= torch.cuda.device_count()
            torch.cuda.set_device(local_rank)
        dist.init_process_group(_backend(), init_method="env://", timeout=timeout)
        comm.set_local_rank(local_rank)
        try:
            main_func(*args)
        finally:
            dist.destroy_process_group()
        return
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        main_func(*args)
        return
    if dist_url is None or dist_url == "auto":
        if num_machines != 1:
            raise ValueError("--dist-url=auto only works on one machine; give tcp://HOST:PORT of machine 0")
        dist_url = f"tcp://127.0.0.1:{find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// init may not work across machines; prefer tcp://")
    mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",
    )


def _distributed_worker(
    local_rank: int,
    main_func: Callable[..., Any],
    world_size: int,
    num_gpus_per_machine: int,
    machine_rank: int,
    dist_url: str,
    args: tuple,
    timeout: datetime.timedelta,
) -> None:
    backend = _backend()
    if backend == "nccl":
        if num_gpus_per_machine > torch.cuda.device_count():
            raise RuntimeError(f"--num-gpus {num_gpus_per_machine} but only {torch.cuda.device_count()} GPUs are "
                               "visible")
        torch.cuda.set_device(local_rank)
    rank = machine_rank * num_gpus_per_machine + local_rank
    dist.init_process_group(backend, init_method=dist_url, world_size=world_size, rank=rank, timeout=timeout)
    comm.set_local_rank(local_rank)
    comm.synchronize()
    try:
        main_func(*args)
    finally:
        dist.destroy_process_group()
