"""One writer per directory: an exclusive lock file naming its holder (pid, host, command).

A training run, a pre-training run or a benchmark holds ``DIR/<name>`` while it writes into ``DIR``.
A second process that asks for the same lock fails at once with a :class:`LockError` naming the
directory, the holder and what to do; it never waits, and never writes into the directory.

How the lock is held: the file is created (or opened) and locked with ``flock`` (exclusive,
non-blocking); the kernel drops that lock when its process ends, however it ends. So a lock file
whose ``flock`` is free is stale: its holder is gone (a ``kill -9``, a crashed node). The holder's
pid and host are written into the file for the messages. A stale lock is taken over with a logged
warning naming the old holder. Where the file system does not support ``flock`` (some network
mounts), the pid and host decide: a lock of this host whose process is gone is stale; one of
another host, or of a live process, is refused (the message says how to remove it).

The file is removed on release (normal exit and exceptions). A process can only release a lock it
holds, so a lock taken over in between is never deleted by the old holder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from types import TracebackType

__all__ = ["DirectoryLock", "LockError", "read_lock_holder"]

logger = logging.getLogger(__name__)


class LockError(RuntimeError):
    """Another process holds the lock of a directory (or the lock file cannot be used)."""


def _pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:  # a finished child not yet reaped still answers kill(0)
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def read_lock_holder(path: str) -> dict | None:
    """The holder a lock file names (``pid``, ``host``, ``since``, ``command``), or ``None`` when the
    file is missing, empty or not a lock record.

    Args:
        path: the lock file.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.loads(f.read() or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "pid" in data and "host" in data else None


def _describe(holder: dict | None) -> str:
    if holder is None:
        return "a process that wrote no record (an unreadable lock file)"
    since = f", since {holder['since']}" if holder.get("since") else ""
    command = f", running: {holder['command']}" if holder.get("command") else ""
    return f"pid {holder['pid']} on host {holder['host']}{since}{command}"


class DirectoryLock:
    """An exclusive lock on ``directory`` through the file ``directory/name``.

    Args:
        directory: the directory the holder writes into (created when missing).
        name: the lock file's name inside it.
        what: what holds it, for messages ("training run", "benchmark").
        hint: what a refused user can do instead, added to the message (e.g. "or set
            train.output_dir= to another directory").

    Use as a context manager, or call :meth:`acquire` / :meth:`release`. :attr:`took_over` says,
    after :meth:`acquire`, which stale holder's lock was taken over (``None`` if none), so the
    caller can log it again once its log file is open.
    """

    def __init__(self, directory: str, name: str, what: str, hint: str = "") -> None:
        self.directory = directory
        self.path = os.path.join(directory, name)
        self.what = what
        self.hint = hint
        self.took_over: str | None = None
        self._fd: int | None = None
        self._created_dir = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _refuse(self, holder: dict | None, why: str) -> LockError:
        hint = f", {self.hint}" if self.hint else ""
        return LockError(
            f"{self.directory} is in use: {why} ({self.path} names {_describe(holder)}). Two processes writing "
            f"into one directory would mix their files: nothing was written. Wait for it to finish (or stop "
            f"it){hint}. If that process is gone, delete {self.path}."
        )

    def acquire(self) -> "DirectoryLock":
        """Take the lock or raise :class:`LockError` at once (never waits).

        Raises:
            LockError: another live process holds it (naming the directory, the holder and what
                to do), or the lock file cannot be created (naming it and the cause).
        """
        if self._fd is not None:
            raise LockError(f"{self.path}: this lock is already held by this process")
        try:
            self._created_dir = not os.path.isdir(self.directory)
            os.makedirs(self.directory, exist_ok=True)
        except OSError as e:
            raise LockError(f"Cannot create {self.directory} for the {self.what}: {e.strerror or e}") from e
        for _ in range(10):  # a holder may remove the file between our open and our flock: retry
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise LockError(f"Cannot create the lock file {self.path}: {e.strerror or e}") from e
            try:
                if self._lock_fd(fd):
                    return self
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        raise LockError(f"{self.path} kept changing while it was being locked; try again")

    def _lock_fd(self, fd: int) -> bool:
        """Lock the open file ``fd``; ``False`` when the path no longer names it (retry)."""
        flock_works = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._refuse(read_lock_holder(self.path), f"a {self.what} is running there") from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise LockError(f"Cannot lock {self.path}: {e.strerror or e}") from e
            flock_works = False  # the file system has no flock: the record decides
        try:
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                return False
        except FileNotFoundError:
            return False
        holder = read_lock_holder(self.path)
        me = socket.gethostname()
        if holder is not None and (holder["host"], holder["pid"]) != (me, os.getpid()):
            same_host = holder["host"] == me
            alive = same_host and _pid_alive(int(holder["pid"]))
            if not flock_works and (alive or not same_host):
                why = (f"a {self.what} is running there" if alive else
                       "it is locked from another host and this file system cannot tell whether that process runs")
                raise self._refuse(holder, why)
            gone = "its process is gone" if same_host and not alive else "nothing holds its lock any more"
            self.took_over = f"stale lock {self.path} of {_describe(holder)} ({gone})"
            logger.warning("Taking over the %s", self.took_over)
        elif holder is None and os.fstat(fd).st_size:
            if not flock_works:
                raise self._refuse(None, "its lock file is unreadable")
            self.took_over = f"stale lock {self.path} with an unreadable record (nothing holds its lock any more)"
            logger.warning("Taking over the %s", self.took_over)
        record = {"pid": os.getpid(), "host": me, "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "command": " ".join(sys.argv)[:500], "what": self.what}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        self._fd = fd
        return True

    def release(self) -> None:
        """Remove the lock file (when it is still ours) and drop the lock; a no-op when not held. A
        directory the lock created and nothing else wrote into is removed too."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                os.remove(self.path)
        except OSError:
            pass  # removed or replaced already: nothing of ours to delete
        finally:
            os.close(fd)
        if self._created_dir:
            try:
                os.rmdir(self.directory)  # fails, as it should, unless it is empty
            except OSError:
                pass

    def __enter__(self) -> "DirectoryLock":
        return self if self.held else self.acquire()  # a lock acquired first (to catch its error) is kept

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
