"""The iteration-based training loop and its hook protocol (Detectron2's ``train_loop.py`` shape).

Hook call order, for every hook in registration order:

* ``before_train()`` once;
* per iteration: ``before_step()``, then (inside ``run_step``) ``after_backward()``, then
  ``after_step()``;
* ``after_train()`` once, also when training stops with an exception.
"""

from __future__ import annotations

import contextlib

import logging
import math
import resource
import time
import weakref
from typing import Iterable

import torch
import torch.nn as nn

from ..utils import comm
from .events import EventStorage

__all__ = ["HookBase", "TrainerBase", "SimpleTrainer", "AMP_DTYPES"]

logger = logging.getLogger(__name__)

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


class HookBase:
    """Base class for hooks; ``self.trainer`` is set (as a weak proxy) when registered."""

    trainer: "TrainerBase"

    def before_train(self) -> None: ...

    def after_train(self) -> None: ...

    def before_step(self) -> None: ...

    def after_backward(self) -> None: ...

    def after_step(self) -> None: ...

    def state_dict(self) -> dict:
        return {}


class TrainerBase:
    """Runs ``run_step`` from ``start_iter`` to ``max_iter`` with hooks around it."""

    def __init__(self) -> None:
        self._hooks: list[HookBase] = []
        self.iter = 0
        self.start_iter = 0
        self.max_iter = 0
        self.storage: EventStorage

    def register_hooks(self, hooks: Iterable[HookBase | None]) -> None:
        for h in hooks:
            if h is None:
                continue
            h.trainer = weakref.proxy(self)
            self._hooks.append(h)

    def train(self, start_iter: int, max_iter: int) -> None:
        logger.info("Starting training from iteration %d", start_iter)
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        with EventStorage(start_iter) as self.storage:
            try:
                self.before_train()
                for self.iter in range(start_iter, max_iter):
                    self.before_step()
                    self.run_step()
                    self.after_step()
                # The loop leaves self.iter at the last iteration; after_train sees max_iter.
                self.iter += 1
            finally:
                self.after_train()

    def before_train(self) -> None:
        for h in self._hooks:
            h.before_train()

    def after_train(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_train()

    def before_step(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.before_step()

    def after_backward(self) -> None:
        for h in self._hooks:
            h.after_backward()

    def after_step(self) -> None:
        for h in self._hooks:
            h.after_step()

    def run_step(self) -> None:
        raise NotImplementedError


def _max_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # Peak resident set size of the process (Linux reports KiB).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class SimpleTrainer(TrainerBase):
    """One optimizer step per iteration: load a batch, sum the losses, backward, step.

    Args:
        model: returns a dict of losses in training mode.
        data_loader: an iterable of batches (restartable at ``start_iter``, see ``TrainLoader``).
        optimizer: the optimizer.
        amp_dtype: ``None`` (fp32), ``torch.float16`` (CUDA only, with a GradScaler) or
            ``torch.bfloat16`` (CUDA or CPU) autocast.
        clip_grad_norm: clip the global gradient norm to this value (``None``: no clipping).
        device: where the model runs.
        grad_accum_steps: batches whose gradients are summed (each loss divided by this) before
            one optimizer step: the effective batch is ``grad_accum_steps`` times the loader's. It
            equals one large batch except for BatchNorm statistics, which stay per micro-batch.
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        amp_dtype: torch.dtype | None = None,
        clip_grad_norm: float | None = None,
        device: torch.device | str = "cpu",
        grad_accum_steps: int = 1,
    ) -> None:
        super().__init__()
        if grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
        self.grad_accum_steps = int(grad_accum_steps)
        model.train()
        self.model = model
        self.data_loader = data_loader
        self._data_iter = None
        self.optimizer = optimizer
        self.device = torch.device(device)
        if amp_dtype is torch.float16 and self.device.type != "cuda":
            raise ValueError("train.amp.dtype='float16' needs CUDA; on the CPU use 'bfloat16' or disable AMP")
        self.amp_dtype = amp_dtype
        self.grad_scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)
        self.clip_grad_norm = clip_grad_norm

    @property
    def data_iter(self):
        if self._data_iter is None:
            if hasattr(self.data_loader, "set_start_iter"):
                # Each iteration consumes grad_accum_steps batches of the stateless stream.
                self.data_loader.set_start_iter(self.start_iter * self.grad_accum_steps)
            self._data_iter = iter(self.data_loader)
        return self._data_iter

    def run_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        data_time, summed = 0.0, {}
        k = self.grad_accum_steps
        for micro in range(k):
            start = time.perf_counter()
            data = next(self.data_iter)
            data_time += time.perf_counter() - start
            # Under DDP, gradients are all-reduced once, on the last micro-batch.
            sync = micro == k - 1 or not isinstance(self.model, nn.parallel.DistributedDataParallel)
            with contextlib.nullcontext() if sync else self.model.no_sync():
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                    enabled=self.amp_dtype is not None):
                    loss_dict = self.model(data)
                losses = sum(loss_dict.values())
                self._check_finite(losses, loss_dict)
                self.grad_scaler.scale(losses / k).backward()
            for name, v in loss_dict.items():
                summed[name] = summed.get(name, 0.0) + v.detach() / k
        loss_dict = summed
        self.after_backward()
        if self.clip_grad_norm is not None:
            self.grad_scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
            self.storage.put_scalar("grad_norm", grad_norm)
        self._write_metrics(loss_dict, data_time)
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()

    def _check_finite(self, losses: torch.Tensor, loss_dict: dict[str, torch.Tensor]) -> None:
        # Stop before the optimizer step, so the weights (and the last checkpoint) stay good.
        if not torch.isfinite(losses).all():
            values = ", ".join(f"{k}={float(v):.4g}" for k, v in loss_dict.items())
            raise FloatingPointError(
                f"Loss became infinite or NaN at iteration {self.iter}: total_loss={float(losses):.4g}, "
                f"{values}. Training stopped before the optimizer step; the last checkpoint is intact."
            )

    def _write_metrics(self, loss_dict: dict[str, torch.Tensor], data_time: float) -> None:
        values = {k: float(v.detach()) for k, v in loss_dict.items()}
        values["data_time"] = data_time
        values = comm.reduce_dict(values)
        if comm.is_main_process():
            data_time = values.pop("data_time")
            self.storage.put_scalar("data_time", data_time)
            total = sum(values.values())
            if not math.isfinite(total):
                raise FloatingPointError(f"Loss became infinite or NaN at iteration {self.iter}: {values}")
            self.storage.put_scalar("total_loss", total)
            self.storage.put_scalars(**values)
            self.storage.put_scalar("max_mem_mb", _max_memory_mb(self.device), smoothing_hint=False)
            if self.amp_dtype is torch.float16:
                self.storage.put_scalar("grad_scale", self.grad_scaler.get_scale(), smoothing_hint=False)

    def state_dict(self) -> dict:
        return {"grad_scaler": self.grad_scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("grad_scaler"):
            self.grad_scaler.load_state_dict(state["grad_scaler"])
