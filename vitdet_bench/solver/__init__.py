"""Optimizer parameter groups and lr schedules."""

from .param_groups import NORM_TYPES, get_optimizer_params
from .schedules import LRMultiplier, WarmupParamScheduler, cosine_schedule, epochs_to_iters, step_schedule

__all__ = [
    "LRMultiplier",
    "NORM_TYPES",
    "WarmupParamScheduler",
    "cosine_schedule",
    "epochs_to_iters",
    "get_optimizer_params",
    "step_schedule",
]
