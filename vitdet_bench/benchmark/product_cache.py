"""Pre-training products cached by content, so a second benchmark reuses them and says so.

A pre-training step's product (the exported backbone or tokenizer, with the run's ``config.yaml``,
``metrics.json`` and ``log.txt`` for the report) depends on its full config, the code and the seed.
Its cache key is a hash of the step's resolved config without ``train.output_dir`` (the seed and
the device are in it), with every path to an earlier step's directory replaced by that step's own
key (BEiT's tokenizer), plus a hash of the package's source files: any code change misses the
cache. Products live in ``$VITDET_BENCH_CACHE/pretrain_products/<key>/`` and are copied into a
benchmark's step directory with ``reused_from.json`` naming where and when they were made.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import time

from ..data.demo import demo_cache_dir
from ..utils.cache import build_directory_atomically, is_complete

__all__ = ["CACHED_FILES", "REUSED_FILE", "code_version", "fetch_product", "product_key", "publish_product"]

logger = logging.getLogger("vitdet_bench.benchmark")

# What a step directory needs downstream: the product, and what the report reads.
CACHED_FILES = ("backbone_final.pth", "tokenizer_final.pth", "config.yaml", "metrics.json", "log.txt",
                "init_source.json")
REUSED_FILE = "reused_from.json"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of every source file of the ``vitdet_bench`` package (names and contents)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha1()
    for dirpath, dirnames, files in sorted(os.walk(root)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(dirpath, name)
            h.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:16]


def product_key(config_file: str, overrides: list[str], step_dirs: dict[str, str], step_keys: dict[str, str]) -> str:
    """The content key of one step: its resolved config (minus ``train.output_dir``), earlier
    steps' directories replaced by their keys, and :func:`code_version`.

    Args:
        config_file: the step's pre-training config.
        overrides: its overrides as it runs them (paths of earlier steps already filled in).
        step_dirs: earlier step name -> its directory (as the overrides hold it).
        step_keys: earlier step name -> its key.
    """
    from omegaconf import OmegaConf

    from ..config import LazyConfig

    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), list(overrides))
    cfg.train.output_dir = ""
    text = OmegaConf.to_yaml(cfg, resolve=True)
    for name, directory in step_dirs.items():
        if name in step_keys:
            text = text.replace(directory, f"<pretrain step {step_keys[name]}>")
    return hashlib.sha1(f"{text}\n{code_version()}".encode()).hexdigest()[:20]


def _cache_dir(key: str, root: str | None = None) -> str:
    return os.path.join(root or demo_cache_dir(), "pretrain_products", key)


def fetch_product(key: str, step_dir: str, product: str, root: str | None = None) -> dict | None:
    """Copy a cached product into ``step_dir`` (which must not hold one); its provenance, or ``None``."""
    src = _cache_dir(key, root)
    if not (is_complete(src) and os.path.isfile(os.path.join(src, product))):
        return None
    os.makedirs(step_dir, exist_ok=True)
    for name in CACHED_FILES:
        if os.path.isfile(os.path.join(src, name)):
            shutil.copy2(os.path.join(src, name), os.path.join(step_dir, name))
    with open(os.path.join(src, "provenance.json"), encoding="utf-8") as f:
        provenance = json.load(f)
    provenance = {**provenance, "cache": src, "key": key}
    with open(os.path.join(step_dir, REUSED_FILE), "w", encoding="utf-8") as f:
        json.dump(provenance, f, indent=1)
    logger.info("Pre-training %s: reused %s from the cache %s (made %s in %s)", step_dir, product, src,
                provenance.get("made"), provenance.get("step_dir"))
    return provenance


def publish_product(key: str, step_dir: str, product: str, wall_s: float | None = None,
                    root: str | None = None) -> None:
    """Copy a finished step's product (and report files) into the cache, unless already there."""
    out = _cache_dir(key, root)
    if is_complete(out) or not os.path.isfile(os.path.join(step_dir, product)):
        return
    with build_directory_atomically(os.path.dirname(out), out, ".product_tmp_") as tmp:
        for name in CACHED_FILES:
            if os.path.isfile(os.path.join(step_dir, name)):
                shutil.copy2(os.path.join(step_dir, name), os.path.join(tmp, name))
        with open(os.path.join(tmp, "provenance.json"), "w", encoding="utf-8") as f:
            json.dump({"step_dir": os.path.abspath(step_dir), "made": time.strftime("%Y-%m-%d %H:%M:%S"),
                       "wall_s": wall_s, "code_version": code_version()}, f, indent=1)
