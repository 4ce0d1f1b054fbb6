"""Cache directories that appear whole or not at all (generated datasets, cached run products).

A directory is built in a temporary folder next to its final place and published with one
``rename`` plus a ``DONE`` marker, so a reader never sees half of it and an interrupted build
leaves nothing a later run would trust. What an interruption can leave behind is handled when the
next build starts: a temporary folder whose builder process is gone is deleted (it can be hundreds
of MB), and a folder at the final place without its marker (a build from an older version, or one
whose marker was removed) is deleted and built again, each with a log line saying what and why.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
from typing import Iterator

__all__ = ["DONE_MARKER", "build_directory_atomically", "is_complete"]

logger = logging.getLogger(__name__)

DONE_MARKER = "DONE"


def is_complete(path: str) -> bool:
    """Whether ``path`` is a published cache directory (holds the ``DONE`` marker)."""
    return os.path.isfile(os.path.join(path, DONE_MARKER))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _remove_abandoned_builds(root: str, prefix: str) -> None:
    """Delete ``root/<prefix><host>_<pid>_*`` folders whose builder (this host, that pid) is gone."""
    host = socket.gethostname()
    for name in os.listdir(root):
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix):].split("_")
        if len(parts) < 3 or parts[0] != host or not parts[1].isdigit() or _pid_alive(int(parts[1])):
            continue
        path = os.path.join(root, name)
        logger.warning("Removing %s: a build interrupted before it finished (its process %s is gone)", path, parts[1])
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def build_directory_atomically(root: str, out: str, prefix: str) -> Iterator[str]:
    """Build ``out`` in a temporary folder under ``root`` (yielded), then publish it with the ``DONE``
    marker in one rename. If another process published ``out`` first, its copy is kept (the builds
    are deterministic, so it is the same) and this one is dropped.

    Args:
        root: the cache root (created if missing).
        out: the final directory (inside ``root``).
        prefix: the temporary folders' name prefix (e.g. ``.pool_tmp_``).
    """
    os.makedirs(root, exist_ok=True)
    _remove_abandoned_builds(root, prefix)
    tmp = tempfile.mkdtemp(prefix=f"{prefix}{socket.gethostname()}_{os.getpid()}_", dir=root)
    try:
        yield tmp
        open(os.path.join(tmp, DONE_MARKER), "w").close()
        if os.path.isdir(out) and not is_complete(out):
            logger.warning("Replacing %s: it has no %s marker, so it was never completely built", out, DONE_MARKER)
            shutil.rmtree(out)
        try:
            os.rename(tmp, out)
        except OSError:
            if not is_complete(out):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
