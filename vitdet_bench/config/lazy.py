"""LazyConfig: Python config files of ``L(Class)(...)`` calls, built on OmegaConf.

This follows Detectron2's ``detectron2/config/lazy.py`` interface (``LazyCall``, ``LazyConfig.load /
save / apply_overrides``) so that its users can read our configs without learning anything new. No
maintained package offers it on current Python (``laco`` needs Python >= 3.13), so the ~200 lines
below are our own. Differences from Detectron2 that are deliberate:

* an override of a key that does not exist fails and names the closest existing keys (Detectron2
  silently adds it); ``+key=value`` adds a new key on purpose, as in Hydra;
* ``key=None`` sets the value to ``None`` (Hydra alone would store the string ``"None"``);
* a config value that YAML cannot hold is reported by its dotted key when saving.
"""

from __future__ import annotations

import builtins
import difflib
import importlib
import json
import logging
import os
import pydoc
import types
import uuid
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import is_dataclass
from typing import Any, Callable, Iterator, Sequence

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = ["LazyCall", "LazyConfig", "ConfigKeyError", "flatten_keys", "locate", "target_name"]

logger = logging.getLogger(__name__)

# Relative imports inside config files are resolved by file path, not through sys.path; modules
# loaded that way get a package name with this prefix so our import hook recognises them.
_CFG_PACKAGE_NAME = "vitdet_bench._cfg_loader"

# ``${last:${..box_head.fc_dims}}``: a list's last item, so a value that follows another node's
# list (the box predictor's input width is the box head's last fc width) is derived, not restated.
# OmegaConf's own interpolation has no negative index. Registered on import, so config.yaml files
# written by LazyConfig.save (interpolations kept) resolve the same way when read back.
if not OmegaConf.has_resolver("last"):
    OmegaConf.register_new_resolver("last", lambda items: items[-1])


class ConfigKeyError(KeyError):
    """A dotted config key that does not exist (the message names the closest existing keys)."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable.
        return str(self.args[0])


def locate(name: str) -> Any:
    """Import an object from its dotted path ``"package.module.Object"``.

    Raises:
        ImportError: naming the path when nothing can be imported from it.
    """
    obj = pydoc.locate(name)
    if obj is None:
        # pydoc.locate swallows the reason; retry by hand to report it.
        module_name, _, attr = name.rpartition(".")
        try:
            module = importlib.import_module(module_name)
            obj = getattr(module, attr)
        except Exception as e:
            raise ImportError(f"Cannot locate '{name}': {type(e).__name__}: {e}") from e
    return obj


def target_name(target: Any) -> str:
    """The importable dotted name of a callable, ``module.qualname``."""
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", repr(target))
    return f"{module}.{qualname}" if module else qualname


class LazyCall:
    """Wrap a callable so that calling it records the call as a config instead of running it.

    ``LazyCall(torch.nn.Linear)(in_features=4, out_features=2)`` returns a ``DictConfig`` with
    ``_target_`` set to the callable; :func:`~vitdet_bench.config.instantiate` makes the call later.

    Args:
        target: the callable, a dataclass, or its dotted import path.
    """

    def __init__(self, target: Callable | str) -> None:
        if not (callable(target) or isinstance(target, str)):
            raise TypeError(f"LazyCall expects a callable or a dotted name, got {target!r}")
        self._target = target

    def __call__(self, *args: Any, **kwargs: Any) -> DictConfig:
        if args:
            raise TypeError(
                f"LazyCall({target_name(self._target)}) takes keyword arguments only, so that every "
                "value has a name to override; got positional arguments"
            )
        # Dataclasses become strings: OmegaConf would otherwise treat them as structured configs.
        target = target_name(self._target) if is_dataclass(self._target) else self._target
        kwargs["_target_"] = target
        return DictConfig(content=kwargs, flags={"allow_objects": True})


def _cast_to_config(obj: Any) -> Any:
    """Turn plain dicts (recursively) into DictConfig, as configs are expected to hold."""
    if isinstance(obj, dict):
        return DictConfig(obj, flags={"allow_objects": True})
    return obj


def _validate_py_syntax(filename: str) -> None:
    with open(filename, encoding="utf-8") as f:
        content = f.read()
    try:
        compile(content, filename, "exec")
    except SyntaxError as e:
        raise SyntaxError(
            f"Config file {filename} has a syntax error at line {e.lineno}: {e.msg}"
        ) from e


def _random_package_name(filename: str) -> str:
    # The unique suffix keeps two loads of the same file from sharing module state.
    return _CFG_PACKAGE_NAME + str(uuid.uuid4())[:4] + "." + os.path.basename(filename)


@contextmanager
def _patch_import() -> Iterator[None]:
    """Resolve relative imports in config files by file path, for the duration of a load."""
    old_import = builtins.__import__

    def find_relative_file(original_file: str, relative_import_path: str, level: int) -> str:
        cur_file = os.path.dirname(original_file)
        for _ in range(level - 1):
            cur_file = os.path.dirname(cur_file)
        cur_name = relative_import_path.lstrip(".")
        for part in cur_name.split("."):
            cur_file = os.path.join(cur_file, part)
        if not cur_file.endswith(".py"):
            cur_file += ".py"
        if not os.path.isfile(cur_file):
            raise ImportError(
                f"Cannot import name {relative_import_path} from {original_file}: "
                f"{cur_file} does not exist."
            )
        return cur_file

    def load_module(cur_file: str) -> types.ModuleType:
        module = types.ModuleType(_random_package_name(cur_file))
        namespace = {"__file__": cur_file, "__package__": module.__name__}
        _validate_py_syntax(cur_file)
        with open(cur_file, encoding="utf-8") as f:
            exec(compile(f.read(), cur_file, "exec"), namespace)
        for name, value in namespace.items():
            setattr(module, name, value if name.startswith("_") else _cast_to_config(value))
        return module

    def new_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if (
            level != 0
            and globals is not None
            and (globals.get("__package__", "") or "").startswith(_CFG_PACKAGE_NAME)
        ):
            original_file = globals["__file__"]
            if name:
                return load_module(find_relative_file(original_file, name, level))
            # ``from . import base, models``: each name is a sibling config file.
            package = types.ModuleType(_random_package_name(original_file))
            for sub in fromlist or ():
                setattr(package, sub, load_module(find_relative_file(original_file, sub, level)))
            return package
        return old_import(name, globals, locals, fromlist=fromlist, level=level)

    builtins.__import__ = new_import
    try:
        yield
    finally:
        builtins.__import__ = old_import


def flatten_keys(cfg: Any, prefix: str = "") -> list[str]:
    """All dotted keys of a config, parents included (``["train", "train.max_iter", ...]``)."""
    keys: list[str] = []
    if isinstance(cfg, (DictConfig, dict)):
        items = cfg.items_ex(resolve=False) if isinstance(cfg, DictConfig) else cfg.items()
        for k, v in items:
            full = f"{prefix}.{k}" if prefix else str(k)
            keys.append(full)
            keys.extend(flatten_keys(v, full))
    elif isinstance(cfg, (ListConfig, list)):
        for i, v in enumerate(cfg):
            full = f"{prefix}.{i}" if prefix else str(i)
            keys.append(full)
            keys.extend(flatten_keys(v, full))
    return keys


def _has_key(cfg: Any, dotted: str) -> bool:
    node = cfg
    for part in dotted.split("."):
        if isinstance(node, DictConfig):
            if part not in node:
                return False
            node = node._get_node(part)
        elif isinstance(node, ListConfig):
            if not part.isdigit() or int(part) >= len(node):
                return False
            node = node._get_node(int(part))
        else:
            return False
    return True


def _unknown_key_error(cfg: DictConfig, key: str, source: str) -> ConfigKeyError:
    candidates = flatten_keys(cfg)
    close = difflib.get_close_matches(key, candidates, n=5, cutoff=0.6)
    hint = f" Closest existing keys: {', '.join(close)}." if close else ""
    return ConfigKeyError(
        f"Override '{source}': the config has no key '{key}'.{hint} "
        f"Use '+{source}' to add a new key on purpose."
    )


class LazyConfig:
    """Load, save and override LazyConfig files (Python or YAML)."""

    @staticmethod
    def load(filename: str, keys: str | Sequence[str] | None = None) -> Any:
        """Load a config file.

        Args:
            filename: a ``.py`` config (which may import sibling configs with relative imports) or
                a ``.yaml`` file written by :meth:`save`.
            keys: return only these top-level keys (one key returns its value alone).

        Returns:
            a ``DictConfig`` of the file's public top-level dicts and configs.
        """
        filename = filename.replace("/./", "/")
        if not os.path.isfile(filename):
            raise FileNotFoundError(f"Config file {filename} does not exist")
        ext = os.path.splitext(filename)[1]
        if ext == ".py":
            _validate_py_syntax(filename)
            with _patch_import():
                namespace = {"__file__": filename, "__package__": _random_package_name(filename)}
                with open(filename, encoding="utf-8") as f:
                    content = f.read()
                exec(compile(content, filename, "exec"), namespace)
            ret = {
                name: _cast_to_config(value)
                for name, value in namespace.items()
                if isinstance(value, (DictConfig, ListConfig, dict)) and not name.startswith("_")
            }
            ret = DictConfig(ret, flags={"allow_objects": True})
        elif ext in (".yaml", ".yml"):
            with open(filename, encoding="utf-8") as f:
                obj = yaml.safe_load(f)
            if not isinstance(obj, dict):
                raise ValueError(f"Config file {filename} does not hold a mapping at the top level")
            ret = OmegaConf.create(obj, flags={"allow_objects": True})
        else:
            raise ValueError(f"Config file {filename} must be .py or .yaml, not '{ext}'")
        if keys is None:
            return ret
        if isinstance(keys, str):
            return ret[keys]
        return tuple(ret[k] for k in keys)

    @staticmethod
    def to_dict(cfg: DictConfig, filename: str = "<config>") -> dict:
        """The plain dict :meth:`save` writes: callable targets as dotted import paths,
        interpolations (``${..}``) unresolved.

        Raises:
            ValueError: naming the dotted keys whose values YAML cannot hold (objects, lambdas,
                functions defined inside a config file), and ``filename`` as the destination.
        """
        cfg = deepcopy(cfg)
        problems: list[str] = []

        def convert(node: Any, key: str) -> Any:
            if isinstance(node, (DictConfig, dict)):
                items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else node.items()
                out = {}
                for k, v in items:
                    full = f"{key}.{k}" if key else str(k)
                    if k == "_target_" and not isinstance(v, str):
                        v = target_name(v)
                        try:
                            ok = locate(v) is not None
                        except ImportError:
                            ok = False
                        if not ok or "<locals>" in v or "<lambda>" in v:
                            problems.append(full)
                        out[k] = v
                    else:
                        out[k] = convert(v, full)
                return out
            if isinstance(node, (ListConfig, list, tuple)):
                return [convert(v, f"{key}.{i}") for i, v in enumerate(node)]
            if node is None or isinstance(node, (bool, int, float, str)):
                return node
            if callable(node):
                name = target_name(node)
                if "<locals>" in name or "<lambda>" in name or _CFG_PACKAGE_NAME in name:
                    problems.append(key)
                return name
            problems.append(key)
            return repr(node)

        def raw(node: Any) -> Any:
            # Read values without resolving ``${..}`` so interpolations survive the round trip.
            if isinstance(node, DictConfig):
                return {k: raw(node._get_node(k)) for k in node.keys()}
            if isinstance(node, ListConfig):
                return [raw(node._get_node(i)) for i in range(len(node))]
            value = node._value() if hasattr(node, "_value") else node
            if isinstance(value, (DictConfig, ListConfig)):
                return raw(value)
            return value

        plain = convert(raw(cfg), "")
        if problems:
            raise ValueError(
                f"Cannot save config to {filename}: these keys hold values YAML cannot store "
                f"(objects, lambdas or functions defined in a config file): {', '.join(problems)}"
            )
        return plain

    @staticmethod
    def save(cfg: DictConfig, filename: str) -> None:
        """Save a config as YAML that :meth:`load` reads back into an equal config.

        Callable targets become dotted import paths; interpolations (``${..}``) stay unresolved.
        The file is written atomically (a temporary file renamed over it).

        Raises:
            ValueError: naming the dotted keys whose values YAML cannot hold (objects, lambdas,
                functions defined inside a config file).
        """
        plain = LazyConfig.to_dict(cfg, filename)
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        tmp = f"{filename}.tmp.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            yaml.safe_dump(plain, f, sort_keys=False, default_flow_style=None, width=100)
        os.replace(tmp, filename)

    @staticmethod
    def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
        """Apply command-line overrides such as ``["a.b=1", "x.y=[1,2]", "z=None", "+new=3"]``.

        Values are parsed with Hydra's override grammar (lists, numbers, booleans, ``null``);
        ``None`` also means null. A key that does not exist raises :class:`ConfigKeyError` unless
        it is prefixed with ``+``.
        """
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create()
        for source in overrides:
            try:
                (parsed,) = parser.parse_overrides([source])
            except Exception as e:
                raise ValueError(f"Cannot parse override '{source}': {e}") from e
            key = parsed.key_or_group
            if parsed.is_delete():
                raise ValueError(f"Override '{source}': deleting keys (~key) is not supported")
            value = parsed.value()
            value = _normalise_override_value(value)
            if not parsed.is_add() and not _has_key(cfg, key):
                raise _unknown_key_error(cfg, key, source)
            _check_descend(cfg, key, source)
            if _has_key(cfg, key):
                value = _check_override_type(cfg, key, value, source)
            OmegaConf.update(cfg, key, value, merge=False, force_add=parsed.is_add())
        return cfg


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "an integer" if isinstance(value, int) else "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple, ListConfig)):
        return "a list"
    if isinstance(value, (dict, DictConfig)):
        return "a mapping"
    return type(value).__name__


def _check_override_type(cfg: DictConfig, key: str, value: Any, source: str) -> Any:
    """Refuse an override whose value cannot be what the key holds (``train.max_iter=abc``).

    Booleans, integers, numbers, lists and mappings must keep their kind (an integer for a number
    is fine, and so is an integral number for an integer); ``None`` always fits, and keys that
    hold a string, ``None``, an interpolation or an object take anything.
    """
    node = cfg
    for part in key.split("."):
        node = node._get_node(int(part) if isinstance(node, ListConfig) else part)
    if node is None or node._is_interpolation() or key.split(".")[-1] == "_target_":
        return value
    old = node._value()
    if value is None or old is None or isinstance(old, str):
        return value
    if isinstance(old, bool):
        ok = isinstance(value, bool)
    elif isinstance(old, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(old, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(old, (list, tuple, ListConfig)):
        ok = isinstance(value, list)
    elif isinstance(old, (dict, DictConfig)):
        ok = isinstance(value, dict)
    else:
        return value  # an object stored in the config
    if not ok:
        raise ValueError(
            f"Override '{source}': {key} holds {_kind(old)} ({_short(old)}), but {value!r} is {_kind(value)}. "
            f"Give {_kind(old)}, e.g. {key}={_short(old)}."
        )
    return value


def _short(value: Any) -> str:
    """A value as one would type it after ``key=`` (no spaces), shortened."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    if isinstance(value, (list, dict)):
        text = json.dumps(value, separators=(",", ":"), default=str)
    else:
        text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _normalise_override_value(value: Any) -> Any:
    if isinstance(value, str) and value == "None":
        return None
    if isinstance(value, list):
        return [_normalise_override_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise_override_value(v) for k, v in value.items()}
    return value


def _check_descend(cfg: DictConfig, key: str, source: str) -> None:
    """Refuse to set attributes on objects stored in a config (only config nodes are editable)."""
    node: Any = cfg
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, DictConfig):
            if part not in node:
                return
            node = node[part]
        elif isinstance(node, ListConfig):
            node = node[int(part)]
        else:
            raise ValueError(
                f"Override '{source}': '{'.'.join(parts[:i])}' is a {type(node).__name__}, "
                "not a config node, so its fields cannot be overridden"
            )
