"""Logging to the console (main process) and to ``log.txt`` in the output directory."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator

__all__ = ["Terminated", "setup_logger", "log_fatal_errors", "close_log_files", "sigterm_as_exception"]

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


class Terminated(SystemExit):
    """SIGTERM (``kill``, a scheduler stopping the job) turned into an exception, so the run's
    ``finally`` blocks run and its log says how it ended; exit status 128 + 15 as for the signal."""


@contextmanager
def sigterm_as_exception() -> Iterator[None]:
    """While inside: SIGTERM raises :class:`Terminated` in the main thread. Only when SIGTERM has
    its default action: a handler someone else installed (submitit's, in a Slurm job, which
    requeues preempted jobs) is left alone."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def log_fatal_errors(log: logging.Logger, what: str) -> Iterator[None]:
    """Write any exception that ends ``what`` (a failure, a ``FloatingPointError``, Ctrl-C, SIGTERM
    under :func:`sigterm_as_exception`) to the
    log files, with its traceback, before it propagates; so a run's ``log.txt`` never ends on a
    normal-looking ``iter: N/M`` line. The console shows Python's own traceback instead."""
    try:
        yield
    except KeyboardInterrupt:
        log.error("%s interrupted", what, exc_info=True, extra={"file_only": True})
        log.error("%s interrupted by KeyboardInterrupt; --resume continues from the last checkpoint", what,
                  extra={"file_only": True})
        raise
    except Terminated:
        log.error("%s terminated", what, exc_info=True, extra={"file_only": True})
        log.error("%s terminated by SIGTERM; --resume continues from the last checkpoint", what,
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
