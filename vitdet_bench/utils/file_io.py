"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every writer of checkpoints, ``last_checkpoint`` and a run's ``metrics.json`` goes through
:func:`atomic_write`. The data is written to ``PATH.tmp.PID`` in the same folder, flushed and
fsynced, then renamed over ``PATH`` (``os.replace`` is atomic within one file system). A failed
write leaves ``PATH`` as it was and removes its temporary file; a killed process leaves only a
``*.tmp.PID`` file, which a resumed run deletes
(:func:`vitdet_bench.engine.run_dir.remove_stale_tmp_files`).
"""

from __future__ import annotations

import os
from typing import IO, Any, Callable

__all__ = ["atomic_write", "temporary_name"]


def temporary_name(path: str) -> str:
    """The name :func:`atomic_write` writes ``path`` under before renaming it: ``path.tmp.PID``."""
    return f"{path}.tmp.{os.getpid()}"


def atomic_write(path: str, write: Callable[[IO[Any]], Any], mode: str = "wb") -> None:
    """Write ``path`` through ``write(file)`` atomically (see the module docstring).

    Args:
        path: the file to write; its folder is created when missing.
        write: called once with the open temporary file.
        mode: ``"wb"`` (bytes) or ``"w"`` (UTF-8 text).

    Raises:
        whatever opening, ``write`` or the rename raises (``OSError`` for a full disk); ``path`` is
        unchanged and the temporary file is gone.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
