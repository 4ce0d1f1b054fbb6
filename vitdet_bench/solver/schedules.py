"""Iteration-based lr schedules on fvcore's param schedulers, with warm-up given in iterations.

Schedules are described relative to training progress and take ``max_iter`` (a config
interpolation of ``train.max_iter``), so a ``train.max_iter=`` override keeps the warm-up length
and the step milestones consistent instead of rescaling frozen literals.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    ConstantParamScheduler,
    CosineParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    ParamScheduler,
)

__all__ = ["WarmupParamScheduler", "LRMultiplier", "cosine_schedule", "epochs_to_iters", "step_schedule"]

logger = logging.getLogger(__name__)


def epochs_to_iters(epochs: float, total_batch_size: int, num_images: int) -> int:
    """Iterations for ``epochs`` passes over ``num_images`` at ``total_batch_size`` (the papers state
    schedules in epochs; the engine counts iterations). Dataset sizes: :mod:`vitdet_bench.data.constants`."""
    return int(round(epochs * num_images / total_batch_size))


def cosine_schedule(
    end_value: float = 0.0, min_lr: float | None = None, base_lr: float | None = None
) -> CosineParamScheduler:
    """Half-period cosine from 1 to ``end_value`` (the benchmarking paper's schedule: 0).

    Recipes whose floor is an absolute lr (BEiT's ``--min_lr 1e-5``, DeiT's) give ``min_lr``
    with ``base_lr`` (the optimizer's lr, ``"${optimizer.lr}"`` in a config): the floor is then
    ``min_lr / base_lr`` of the lr, derived when the config is instantiated, so an
    ``optimizer.lr=`` override keeps the absolute floor.

    Args:
        end_value: the multiplier at the end of training.
        min_lr: an absolute lr floor instead of ``end_value``.
        base_lr: the lr ``min_lr`` is relative to; required with ``min_lr``.
    """
    if min_lr is not None:
        if base_lr is None or base_lr <= 0:
            raise ValueError(f"cosine_schedule(min_lr={min_lr}) needs the positive base_lr it divides, got {base_lr}")
        if end_value:
            raise ValueError(f"cosine_schedule takes end_value ({end_value}) or min_lr ({min_lr}), not both")
        end_value = min_lr / base_lr
    return CosineParamScheduler(1.0, end_value)


def step_schedule(
    max_iter: int,
    milestones: Sequence[float] = (0.889, 0.963),
    values: Sequence[float] = (1.0, 0.1, 0.01),
) -> MultiStepParamScheduler:
    """Step decay at fractions of training (ViTDet: 88.9% and 96.3%, i.e. 163889 / 177546 of 184375)."""
    if len(values) != len(milestones) + 1:
        raise ValueError(f"step_schedule needs len(values) == len(milestones) + 1, got {values}, {milestones}")
    steps = [int(round(m * max_iter)) for m in milestones]
    return MultiStepParamScheduler(list(values), num_updates=max_iter, milestones=steps)


class WarmupParamScheduler(CompositeParamScheduler):
    """A schedule preceded by a warm-up of ``warmup_iters`` iterations.

    Detectron2's default runs the main schedule over the whole run, and the warm-up ramps to its
    value at the end of warm-up. The pre-training recipes (MAE's ``lr_sched``, MoCo v3's
    ``adjust_learning_rate``, BEiT's ``cosine_scheduler``) instead start the cosine after the
    warm-up, over the remaining iterations: ``rescale_interval=True`` (Detectron2's name).

    Args:
        scheduler: the main schedule.
        warmup_iters: warm-up length in iterations.
        max_iter: total iterations.
        warmup_factor: multiplier at iteration 0 (BEiT, MAE, MoCo v3: 0).
        warmup_method: "linear" (reaches the main schedule's value at iteration ``warmup_iters``),
            "linspace" (reaches it at iteration ``warmup_iters - 1``: ``np.linspace(start, peak,
            warmup_iters)``, the ramp of BEiT's / EVA's ``utils.cosine_scheduler``) or "constant".
        rescale_interval: run ``scheduler`` over the iterations after the warm-up (its value at
            the start of that interval is where the warm-up ramps to).
        cooldown_iters: hold the main schedule's end value over the last ``cooldown_iters``
            iterations; warm-up and main schedule run over the ones before, as in a run of
            ``max_iter - cooldown_iters`` iterations (timm's ``--cooldown-epochs``: its
            ``CosineLRScheduler`` stays at ``lr_min`` past the cycle, and timm's ``train.py`` trains
            ``epochs + cooldown_epochs``).
    """

    def __init__(
        self,
        scheduler: ParamScheduler,
        warmup_iters: int,
        max_iter: int,
        warmup_factor: float = 0.001,
        warmup_method: str = "linear",
        rescale_interval: bool = False,
        cooldown_iters: int = 0,
    ) -> None:
        if max_iter <= 0:
            raise ValueError(f"max_iter must be positive, got {max_iter}")
        if not 0 <= cooldown_iters < max_iter:
            raise ValueError(f"cooldown_iters must be in [0, max_iter={max_iter}) so that the schedule runs before it, "
                             f"got {cooldown_iters}")
        self.cooldown_iters, self._floor = cooldown_iters, scheduler(1.0)
        self._main_fraction = (max_iter - cooldown_iters) / max_iter
        max_iter -= cooldown_iters  # warm-up and main schedule: a run without the cool-down
        length = min(max(warmup_iters, 0) / max_iter, 1.0)
        end_value = scheduler(0.0 if rescale_interval else length)
        start_value = warmup_factor * scheduler(0.0)
        if warmup_method == "linear":
            warmup: ParamScheduler = LinearParamScheduler(start_value, end_value)
        elif warmup_method == "linspace":
            # Iteration i of the warm-up sits at i / warmup_iters of its segment: a line through
            # start and end at (warmup_iters - 1) / warmup_iters is np.linspace's i / (warmup_iters - 1).
            slope = warmup_iters / (warmup_iters - 1) if warmup_iters > 1 else 0.0
            warmup = LinearParamScheduler(start_value, start_value + (end_value - start_value) * slope)
        elif warmup_method == "constant":
            warmup = ConstantParamScheduler(start_value)
        else:
            raise ValueError(f"Unknown warmup_method '{warmup_method}': choose 'linear', 'linspace' or 'constant'")
        if length <= 0:
            super().__init__([scheduler], interval_scaling=["fixed"], lengths=[1.0])
        elif length >= 1:
            # The warm-up takes the whole run (a short run keeping a recipe's warm-up): the main
            # schedule has no interval left, and fvcore would divide by its empty length at the end.
            logger.warning("lr warm-up of %d iterations covers the whole run of %d: the schedule never leaves it",
                           warmup_iters, max_iter)
            super().__init__([warmup], interval_scaling=["rescaled"], lengths=[1.0])
        else:
            super().__init__(
                [warmup, scheduler],
                interval_scaling=["rescaled", "rescaled" if rescale_interval else "fixed"],
                lengths=[length, 1 - length],
            )
        self.warmup_iters, self.max_iter = warmup_iters, max_iter + cooldown_iters

    def __call__(self, where: float) -> float:
        if where >= self._main_fraction:
            return self._floor if self.cooldown_iters else super().__call__(where)
        return super().__call__(where / self._main_fraction)


class LRMultiplier(torch.optim.lr_scheduler.LRScheduler):
    """Set each group's lr to ``initial_lr * lr_factor * multiplier(iter / max_iter)``.

    ``lr_factor`` carries layer-wise lr decay (see :func:`get_optimizer_params`); call ``step()``
    once per iteration.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, multiplier: ParamScheduler, max_iter: int,
                 last_iter: int = -1) -> None:
        self._multiplier = multiplier
        self._max_iter = max_iter
        super().__init__(optimizer, last_epoch=last_iter)

    def state_dict(self) -> dict:
        # The multiplier is rebuilt from the config; only the position is state.
        return {"base_lrs": self.base_lrs, "last_epoch": self.last_epoch}

    def get_lr(self) -> list[float]:
        m = self._multiplier(min(self.last_epoch / self._max_iter, 1.0 - 1e-12))
        return [base * g.get("lr_factor", 1.0) * m for base, g in zip(self.base_lrs, self.optimizer.param_groups)]
