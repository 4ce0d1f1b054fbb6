"""Checkpoints: atomic save / resume, and loading weights with a report."""

from .checkpointer import (
    CheckpointError,
    Checkpointer,
    atomic_torch_save,
    get_rng_state,
    load_model_weights,
    set_rng_state,
)

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "atomic_torch_save",
    "get_rng_state",
    "load_model_weights",
    "set_rng_state",
]
