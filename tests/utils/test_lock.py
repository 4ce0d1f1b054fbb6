"""The directory lock (vitdet_bench/utils/lock.py): held by one process at a time, refused at once with a
message naming the directory, the holder and what to do, taken over from a dead holder, released on
exceptions. Holders are real other processes (a child holding the lock, a child killed with SIGKILL);
the file systems without flock are simulated by monkeypatching fcntl.flock."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from vitdet_bench.utils import lock as lock_module
from vitdet_bench.utils.lock import DirectoryLock, LockError, read_lock_holder

from helpers import REPO

_HOLDER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {repo!r})
    from vitdet_bench.utils.lock import DirectoryLock

    lock = DirectoryLock({folder!r}, "run.lock", "training run").acquire()
    open({ready!r}, "w").write(str(os.getpid()))
    while not os.path.exists({release!r}):
        time.sleep(0.05)
    lock.release()
""")


def _wait_for(path, proc):
    """Until ``path`` exists (the child signals it got there) or the child ended."""
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read() + proc.stderr.read())
        time.sleep(0.05)


def _start_holder(tmp_path, folder):
    ready, release = tmp_path / "ready", tmp_path / "release"
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER.format(repo=REPO, folder=str(folder), ready=str(ready), release=str(release)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(ready, proc)
    return proc, release


def _dead_pid():
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_process_is_refused_at_once_naming_the_holder(tmp_path):
    folder = tmp_path / "run"
    proc, release = _start_holder(tmp_path, folder)
    try:
        with pytest.raises(LockError) as e:
            DirectoryLock(str(folder), "run.lock", "training run", hint="or set train.output_dir= elsewhere").acquire()
        msg = str(e.value)
        assert f"{folder} is in use: a training run is running there" in msg
        assert f"pid {proc.pid} on host {socket.gethostname()}" in msg
        assert "or set train.output_dir= elsewhere" in msg and f"delete {folder / 'run.lock'}" in msg
        holder = read_lock_holder(str(folder / "run.lock"))
        assert holder["pid"] == proc.pid and holder["what"] == "training run"
    finally:
        release.write_text("")
        proc.wait(timeout=60)
    assert proc.returncode == 0 and not (folder / "run.lock").exists()
    with DirectoryLock(str(folder), "run.lock", "training run") as lock:  # free again
        assert lock.took_over is None and read_lock_holder(lock.path)["pid"] == os.getpid()
    assert not (folder / "run.lock").exists()


def test_the_lock_of_a_killed_holder_is_taken_over_with_a_message(tmp_path, caplog):
    folder = tmp_path / "run"
    proc, _ = _start_holder(tmp_path, folder)
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up runs: the lock file stays, naming the dead holder
    proc.wait(timeout=60)
    assert read_lock_holder(str(folder / "run.lock"))["pid"] == proc.pid
    with caplog.at_level("WARNING", logger="vitdet_bench.utils.lock"):
        lock = DirectoryLock(str(folder), "run.lock", "training run").acquire()
    try:
        assert f"pid {proc.pid} on host {socket.gethostname()}" in lock.took_over
        assert "its process is gone" in lock.took_over or "nothing holds its lock" in lock.took_over
        assert "Taking over the stale lock" in caplog.text and str(proc.pid) in caplog.text
        assert read_lock_holder(lock.path)["pid"] == os.getpid()
    finally:
        lock.release()


def test_a_fake_stale_lock_file_of_a_dead_pid_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    pid = _dead_pid()
    (folder / "run.lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    with DirectoryLock(str(folder), "run.lock", "benchmark") as lock:
        assert f"pid {pid} on host {socket.gethostname()}" in lock.took_over and "its process is gone" in lock.took_over
    assert sorted(os.listdir(folder)) == []


def _no_flock(monkeypatch):
    def flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", flock)


def test_without_flock_the_record_decides(tmp_path, monkeypatch):
    """A file system without flock: a live holder of this host and any holder of another host are
    refused (the message says what to do), a dead holder of this host is taken over."""
    _no_flock(monkeypatch)
    folder = tmp_path / "run"
    folder.mkdir()
    path = folder / "run.lock"
    path.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(LockError, match=f"a training run is running there .*pid {os.getppid()}"):
        DirectoryLock(str(folder), "run.lock", "training run").acquire()
    path.write_text(json.dumps({"pid": 4242, "host": "node-7"}))
    with pytest.raises(LockError) as e:
        DirectoryLock(str(folder), "run.lock", "training run").acquire()
    assert "locked from another host" in str(e.value) and "pid 4242 on host node-7" in str(e.value)
    assert f"If that process is gone, delete {path}" in str(e.value)
    assert json.loads(path.read_text())["host"] == "node-7"  # a refused lock is left as it was
    path.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    with DirectoryLock(str(folder), "run.lock", "training run") as lock:
        assert "its process is gone" in lock.took_over
    assert not path.exists()


def test_the_lock_is_released_on_an_exception_and_a_new_folder_is_not_left_behind(tmp_path):
    folder = tmp_path / "new"
    with pytest.raises(RuntimeError, match="boom"):
        with DirectoryLock(str(folder), "run.lock", "training run"):
            assert (folder / "run.lock").exists()
            raise RuntimeError("boom")
    assert not folder.exists()  # created for the lock, empty again: removed
    with DirectoryLock(str(folder), "run.lock", "training run"):
        (folder / "config.yaml").write_text("kept")
    assert sorted(os.listdir(folder)) == ["config.yaml"]


def test_one_process_cannot_take_its_own_lock_twice(tmp_path):
    with DirectoryLock(str(tmp_path), "run.lock", "benchmark"):
        with pytest.raises(LockError, match=f"pid {os.getpid()}"):
            DirectoryLock(str(tmp_path), "run.lock", "benchmark").acquire()
