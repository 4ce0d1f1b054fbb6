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
import resource
import time
import weakref
from typing import Iterable

import torch
import torch.nn as nn

from ..utils import comm
from ..utils.events import EventStorage

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
                # The loop leaves self.iter at the last iteration; after_train sees max_iter (also
                # when there was nothing to train: a resumed run that had finished).
                self.iter = max(start_iter, max_iter)
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


def _describe_losses(loss_dict: dict[str, torch.Tensor], micro: int, k: int) -> str:
    values = ", ".join(f"{name}={float(v):.4g}" for name, v in loss_dict.items())
    where = f" (micro-batch {micro + 1} of {k})" if k > 1 else ""
    return f"total_loss={float(sum(loss_dict.values())):.4g}, {values}{where}"


def _describe_bad_grads(model: nn.Module, limit: int = 5) -> str:
    """Name the parameters whose gradients hold NaN / inf (the first ``limit`` of them)."""
    bad = [name for name, p in model.named_parameters()
           if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
    if not bad:
        return "their total norm overflowed"
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"{len(bad)} parameters, e.g. {', '.join(bad[:limit])}{more}"


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
        data_time = 0.0
        k = self.grad_accum_steps
        micro_losses: list[dict[str, torch.Tensor]] = []
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
                # Backward runs even on a NaN loss: every DDP rank must reach the same all-reduce;
                # the ranks then decide together, before the optimizer step, whether to stop.
                self.grad_scaler.scale(losses / k).backward()
            micro_losses.append({name: v.detach() for name, v in loss_dict.items()})
        self.after_backward()
        grad_norm = self._check_finite(micro_losses)
        if self.clip_grad_norm is not None:
            params = [p for p in self.model.parameters() if p.grad is not None]
            if grad_norm is None:
                self.grad_scaler.unscale_(self.optimizer)
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
            torch.nn.utils.clip_grads_with_norm_(params, self.clip_grad_norm, grad_norm)
            self.storage.put_scalar("grad_norm", grad_norm)
        summed = {name: sum(m[name] for m in micro_losses) / k for name in micro_losses[0]}
        self._write_metrics(summed, data_time)
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()

    def _check_finite(self, micro_losses: list[dict[str, torch.Tensor]]) -> torch.Tensor | None:
        """Stop before the optimizer step when any rank's loss, or the gradients, are NaN / inf.

        A finite loss can still give non-finite gradients (a square root at 0, an overflow in
        backward), and one optimizer step with them writes NaN into the weights, and so into the
        next checkpoint. With float16 AMP the GradScaler already skips steps whose gradients are
        inf / NaN (and lowers its scale), so only the loss is checked then. The flags are
        all-reduced, so every DDP rank takes the same decision and none is left waiting.

        Returns:
            the total gradient norm when it was computed (no float16 scaler), else ``None``.
        """
        loss_ok = torch.stack([torch.isfinite(sum(m.values())).all() for m in micro_losses]).all()
        grad_norm = None
        grads_ok = torch.ones((), dtype=torch.bool, device=loss_ok.device)
        if not self.grad_scaler.is_enabled():
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            if grads:
                grad_norm = torch.nn.utils.get_total_norm(grads)
                grads_ok = torch.isfinite(grad_norm).to(loss_ok.device)
        local = torch.stack([~loss_ok, ~grads_ok]).float().cpu()  # the check's one host sync
        flags = comm.all_reduce_max(local)
        if not flags.any():
            return grad_norm
        where = f"at iteration {self.iter}"
        if comm.get_world_size() > 1:
            where += f" (rank {comm.get_rank()} of {comm.get_world_size()})"
        if local[0]:
            micro = next(i for i, m in enumerate(micro_losses) if not bool(torch.isfinite(sum(m.values())).all()))
            why = f"the loss is infinite or NaN: {_describe_losses(micro_losses[micro], micro, len(micro_losses))}"
        elif flags[0]:
            why = "another rank's loss is infinite or NaN (its log names the loss terms)"
        else:
            why = f"the loss is finite but the gradients are not: {_describe_bad_grads(self.model)}"
        raise FloatingPointError(f"Non-finite training {where}: {why}. Training stopped before the "
                                 "optimizer step, so the weights were not updated with it.")

    def _write_metrics(self, loss_dict: dict[str, torch.Tensor], data_time: float) -> None:
        values = {k: float(v) for k, v in loss_dict.items()}
        values["data_time"] = data_time
        values = comm.reduce_dict(values)
        if comm.is_main_process():
            data_time = values.pop("data_time")
            self.storage.put_scalar("data_time", data_time)
            self.storage.put_scalar("total_loss", sum(values.values()))
            self.storage.put_scalars(**values)
            self.storage.put_scalar("max_mem_mb", _max_memory_mb(self.device), smoothing_hint=False)
            if self.amp_dtype is torch.float16:
                self.storage.put_scalar("grad_scale", self.grad_scaler.get_scale(), smoothing_hint=False)

    def state_dict(self) -> dict:
        return {"grad_scaler": self.grad_scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("grad_scaler"):
            self.grad_scaler.load_state_dict(state["grad_scaler"])
