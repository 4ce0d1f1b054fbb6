"""Training hooks: timing, lr schedule, periodic checkpoints, evaluation, metric writers."""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import torch

from ..checkpoint import Checkpointer
from ..utils import comm
from .train_loop import HookBase

__all__ = ["AfterFirstStep", "IterationTimer", "LRScheduler", "PeriodicCheckpointer", "EvalHook", "PeriodicWriter"]

logger = logging.getLogger(__name__)


class AfterFirstStep(HookBase):
    """Call ``function()`` once, after the first step of this training (resumed or not) succeeded."""

    def __init__(self, function: Callable[[], None]) -> None:
        self.function = function
        self._done = False

    def after_step(self) -> None:
        if not self._done:
            self._done = True
            self.function()


class IterationTimer(HookBase):
    """Record each iteration's wall time as ``time`` and the remaining time as ``eta_seconds``."""

    def __init__(self, warmup_iter: int = 3) -> None:
        self._warmup_iter = warmup_iter
        self._step_start = 0.0
        self._train_start = 0.0

    def before_train(self) -> None:
        self._train_start = time.perf_counter()

    def after_train(self) -> None:
        total = time.perf_counter() - self._train_start
        done = self.trainer.iter - self.trainer.start_iter
        if done > 0:
            logger.info("Trained %d iterations in %.1f s (%.4f s / it)", done, total, total / done)

    def before_step(self) -> None:
        self._step_start = time.perf_counter()

    def after_step(self) -> None:
        elapsed = time.perf_counter() - self._step_start
        storage = self.trainer.storage
        storage.put_scalar("time", elapsed)
        # Skip the first iterations (allocation, caching) when estimating the remaining time.
        if self.trainer.iter - self.trainer.start_iter >= self._warmup_iter:
            per_iter = storage.history("time").median(20)
            storage.put_scalar("eta_seconds", per_iter * (self.trainer.max_iter - self.trainer.iter - 1),
                               smoothing_hint=False)


class LRScheduler(HookBase):
    """Step the lr scheduler after every iteration and record the base-group lr as ``lr``."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        self.scheduler = scheduler

    def after_step(self) -> None:
        # The group with lr_factor 1 (the heads) shows the schedule's lr, not a decayed layer's.
        groups = self.trainer.optimizer.param_groups
        lr = max(g["lr"] for g in groups if g.get("lr_factor", 1.0) == max(x.get("lr_factor", 1.0) for x in groups))
        self.trainer.storage.put_scalar("lr", lr, smoothing_hint=False)
        self.scheduler.step()


class PeriodicCheckpointer(HookBase):
    """Save ``model_{iter:07d}.pth`` every ``period`` iterations and ``model_final.pth`` at the end."""

    def __init__(self, checkpointer: Checkpointer, period: int, max_iter: int, max_to_keep: int | None = None) -> None:
        self.checkpointer = checkpointer
        self.period = period
        self.max_iter = max_iter
        self.max_to_keep = max_to_keep

    def after_step(self) -> None:
        it = self.trainer.iter
        if self.period > 0 and (it + 1) % self.period == 0 and it + 1 < self.max_iter:
            self.checkpointer.save(f"model_{it:07d}", iteration=it)
            self.checkpointer.prune(self.max_to_keep)
        if it + 1 >= self.max_iter:
            self.checkpointer.save("model_final", iteration=it)


class EvalHook(HookBase):
    """Run ``eval_function`` every ``period`` iterations (0: only at the end; negative: never).

    ``eval_function`` returns ``{task: {metric: value}}``; values go to the event storage as
    ``task/metric`` (so to ``metrics.json`` and TensorBoard). ``final_function``, when given, runs
    instead at the last iteration (the intermediate evaluations may score a cheaper subset).
    """

    def __init__(self, period: int, eval_function: Callable[[], dict],
                 final_function: Callable[[], dict] | None = None) -> None:
        self.period = period
        self.eval_function = eval_function
        self.final_function = final_function or eval_function

    def _do_eval(self, final: bool = False) -> None:
        # Evaluation must not disturb the training RNG stream (resume equality depends on it).
        with torch.random.fork_rng(devices=[]):
            results = (self.final_function if final else self.eval_function)()
        if comm.is_main_process() and results:
            flat = {f"{task}/{k}": v for task, metrics in results.items() for k, v in metrics.items()}
            self.trainer.storage.put_scalars(**flat, smoothing_hint=False)
            self.trainer.storage.request_write()  # every evaluation reaches metrics.json, whatever log_period
        comm.synchronize()

    def after_step(self) -> None:
        # The final evaluation runs in the last step (as Detectron2), so its results are logged
        # with the last iteration, next to the final checkpoint.
        next_iter = self.trainer.iter + 1
        if self.period < 0:
            return
        if next_iter == self.trainer.max_iter or (self.period > 0 and next_iter % self.period == 0):
            self._do_eval(final=next_iter == self.trainer.max_iter)


class PeriodicWriter(HookBase):
    """Call each writer's ``write()`` every ``period`` iterations, at the end, and in any step
    whose hooks asked for it (:meth:`EventStorage.request_write`: an evaluation)."""

    def __init__(self, writers: Sequence, period: int = 20) -> None:
        self.writers = list(writers)
        self.period = period

    def after_step(self) -> None:
        it = self.trainer.iter
        requested = self.trainer.storage.pop_write_request()  # an evaluation ran in this step
        if (it + 1) % self.period == 0 or it == self.trainer.max_iter - 1 or requested:
            for w in self.writers:
                w.write()

    def after_train(self) -> None:
        for w in self.writers:
            # Final evaluation results land after the last step; flush them too.
            w.write()
            w.close()
