"""Recursive instantiation of LazyConfig nodes.

Hydra's ``instantiate`` would do the call, but its errors name only the target and it hands nested
dicts over as ``DictConfig``; Detectron2 users expect plain ``dict`` / ``list`` arguments and an
error that says which config key failed, so this small walker is our own.
"""

from __future__ import annotations

import difflib
import inspect
from collections import abc
from typing import Any

from omegaconf import DictConfig, ListConfig

from .lazy import locate, target_name

__all__ = ["instantiate", "InstantiationError", "validate_config"]


class InstantiationError(RuntimeError):
    """Building the object at a config key failed; the message names the key and the target."""


def _unexpected_kwargs_hint(target: Any, kwargs: abc.Mapping) -> str:
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return ""
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return ""
    unknown = [k for k in kwargs if k not in params]
    hints = []
    for k in unknown:
        close = difflib.get_close_matches(k, list(params), n=1)
        hints.append(f"'{k}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return f" Unknown arguments: {', '.join(hints)}." if hints else ""


def instantiate(cfg: Any, _key: str = "") -> Any:
    """Build the objects a config describes, depth first.

    A mapping with ``_target_`` becomes ``target(**kwargs)`` with its values instantiated first;
    mappings without a target become plain ``dict`` and lists become ``list``. Interpolations
    (``${..}``) are resolved on the way. Anything else is returned unchanged.

    Raises:
        InstantiationError: naming the dotted config key and the target when the call fails.
    """
    if isinstance(cfg, (ListConfig, list, tuple)) and not isinstance(cfg, str):
        return [instantiate(v, f"{_key}.{i}" if _key else str(i)) for i, v in enumerate(cfg)]
    if isinstance(cfg, (DictConfig, abc.Mapping)):
        kwargs = {
            k: instantiate(v, f"{_key}.{k}" if _key else str(k))
            for k, v in cfg.items()
            if k != "_target_"
        }
        if "_target_" not in cfg:
            return kwargs
        target = cfg["_target_"]
        where = _key or "<root>"
        if isinstance(target, str):
            try:
                target = locate(target)
            except ImportError as e:
                raise InstantiationError(f"Config key '{where}': {e}") from e
        if not callable(target):
            raise InstantiationError(f"Config key '{where}': _target_ {target!r} is not callable")
        try:
            return target(**kwargs)
        except InstantiationError:
            raise
        except TypeError as e:
            hint = _unexpected_kwargs_hint(target, kwargs)
            raise InstantiationError(
                f"Config key '{where}': calling {target_name(target)} failed: {e}.{hint}"
            ) from e
        except Exception as e:
            raise InstantiationError(
                f"Config key '{where}': calling {target_name(target)} failed: "
                f"{type(e).__name__}: {e}"
            ) from e
    return cfg


def validate_config(cfg: Any, _key: str = "") -> None:
    """Check, without building anything, what :func:`instantiate` would fail on later.

    Every ``${..}`` interpolation must resolve, every ``_target_`` must import and be callable,
    and every argument must be one its signature accepts. A run calls this before it writes
    anything, so a config error never leaves a half-written output directory.

    Raises:
        InstantiationError: naming the dotted config key, the target and what is wrong.
    """
    if isinstance(cfg, (ListConfig, list, tuple)) and not isinstance(cfg, str):
        for i in range(len(cfg)):
            validate_config(_child(cfg, i, _key), f"{_key}.{i}" if _key else str(i))
        return
    if not isinstance(cfg, (DictConfig, abc.Mapping)):
        return
    keys = list(cfg.keys())
    for k in keys:
        if k != "_target_":
            validate_config(_child(cfg, k, _key), f"{_key}.{k}" if _key else str(k))
    if "_target_" not in cfg:
        return
    where = _key or "<root>"
    target = cfg["_target_"]
    if isinstance(target, str):
        try:
            target = locate(target)
        except ImportError as e:
            raise InstantiationError(f"Config key '{where}': {e}") from e
    if not callable(target):
        raise InstantiationError(f"Config key '{where}': _target_ {target!r} is not callable")
    hint = _unexpected_kwargs_hint(target, {k: None for k in keys if k != "_target_"})
    if hint:
        raise InstantiationError(f"Config key '{where}': {target_name(target)} does not take these arguments.{hint}")


def _child(node: Any, k: Any, key: str) -> Any:
    """``node[k]`` with interpolations resolved; a broken one names its key."""
    try:
        return node[k]
    except Exception as e:  # omegaconf's InterpolationKeyError / InterpolationResolutionError
        where = f"{key}.{k}" if key else str(k)
        first = str(e).splitlines()[0] if str(e) else ""
        raise InstantiationError(f"Config key '{where}': {type(e).__name__}: {first}") from e
