"""Logging to the console (main process) and to ``log.txt`` in the output directory."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Iterator

__all__ = ["setup_logger", "log_fatal_errors", "close_log_files"]

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
        # Tracebacks logged for log.txt only: Python prints them on the console itself.
        console.addFilter(lambda record: not getattr(record, "file_only", False))
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


def close_log_files(output_dir: str) -> None:
    """Detach and close the ``log.txt`` handlers of ``output_dir``, so that what a process logs after a
    run (the next run of the benchmark, a test) does not land in this run's log."""
    root = logging.getLogger()
    folder = os.path.abspath(output_dir)
    for h in list(root.handlers):
        if getattr(h, "_vitdet_bench", False) and isinstance(h, logging.FileHandler) and \
                os.path.dirname(os.path.abspath(h.baseFilename)) == folder:
            root.removeHandler(h)
            h.close()


@contextmanager
def log_fatal_errors(log: logging.Logger, what: str) -> Iterator[None]:
    """Write any exception that ends ``what`` (a failure, a ``FloatingPointError``, Ctrl-C) to the
    log files, with its traceback, before it propagates; so a run's ``log.txt`` never ends on a
    normal-looking ``iter: N/M`` line. The console shows Python's own traceback instead."""
    try:
        yield
    except KeyboardInterrupt:
        log.error("%s interrupted", what, exc_info=True, extra={"file_only": True})
        log.error("%s interrupted by KeyboardInterrupt; --resume continues from the last checkpoint", what,
                  extra={"file_only": True})
        raise
    except SystemExit as e:
        if e.code not in (None, 0):
            log.error("%s stopped: SystemExit(%s)", what, e.code, extra={"file_only": True})
        raise
    except BaseException as e:
        log.error("%s failed", what, exc_info=True, extra={"file_only": True})
        log.error("%s failed: %s: %s", what, type(e).__name__, e, extra={"file_only": True})
        raise
