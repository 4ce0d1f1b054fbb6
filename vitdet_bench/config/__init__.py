"""Detectron2-style LazyConfig on OmegaConf: ``L(Class)(...)`` configs, overrides, instantiate."""

from .instantiate import InstantiationError, instantiate, validate_config
from .lazy import ConfigKeyError, LazyCall, LazyConfig, flatten_keys, locate

L = LazyCall

__all__ = [
    "ConfigKeyError",
    "InstantiationError",
    "L",
    "LazyCall",
    "LazyConfig",
    "flatten_keys",
    "instantiate",
    "locate",
    "validate_config",
]
