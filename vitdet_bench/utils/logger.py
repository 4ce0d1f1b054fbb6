"""Logging to the console (main process) and to ``log.txt`` in the output directory."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["setup_logger"]

_FORMAT = "[%(asctime)s %(name)s %(levelname)s]: %(message)s"


def setup_logger(output_dir: str | None = None, rank: int = 0, level: int = logging.INFO) -> logging.Logger:
    """Configure the root logger once: console on rank 0, ``log.txt`` (``log.txt.rankN``) per rank."""
    root = logging.getLogger()
    root.setLevel(level)
    for h in list(root.handlers):
        if getattr(h, "_vitdet_bench", False):
            root.removeHandler(h)
            h.close()
    formatter = logging.Formatter(_FORMAT, datefmt="%m/%d %H:%M:%S")
    if rank == 0:
        console = logging.StreamHandler(sys.stdout)
        # The benchmark runner keeps the console quiet (its progress bars instead) while every
        # run's log.txt still gets everything.
        console.setLevel(os.environ.get("VITDET_BENCH_CONSOLE_LEVEL", "NOTSET"))
        console.setFormatter(formatter)
        console._vitdet_bench = True  # type: ignore[attr-defined]
        root.addHandler(console)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        name = "log.txt" if rank == 0 else f"log.txt.rank{rank}"
        fh = logging.FileHandler(os.path.join(output_dir, name), encoding="utf-8")
        fh.setFormatter(formatter)
        fh._vitdet_bench = True  # type: ignore[attr-defined]
        root.addHandler(fh)
    # Libraries that log chattily at INFO.
    for noisy in ("fvcore", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return root
