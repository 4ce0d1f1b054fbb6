"""Optimizer parameter groups and lr schedules."""

from .param_groups import NORM_TYPES, get_optimizer_params
from .schedules import LRMultiplier, WarmupParamScheduler, cosine_schedule, step_schedule

__all__ = [
    "LRMultiplier",
    "NORM_TYPES",
    "WarmupParamScheduler",
    "cosine_schedule",
    "get_optimizer_params",
    "step_schedule",
]
