"""One process per run directory (issue 27 #6 and the run lock), and a run's end written to its log
however it ends (SIGTERM). The other process is real: a training started with subprocess, held at its
first step by a hook of the test's script until the test lets it go (no timing is asserted)."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from vitdet_bench.engine import HookBase, default_argument_parser, main
from vitdet_bench.utils.lock import LockError

from helpers import DEMO_CONFIG, FAST_OVERRIDES, REPO

TINY = [*FAST_OVERRIDES, "train.eval_period=-1", "train.log_period=1", "train.checkpointer.period=100",
        "train.max_iter=3"]


def run_main(*argv, extra_hooks=None):
    args = default_argument_parser().parse_args(["--config-file", DEMO_CONFIG, *argv])
    return main(args, extra_hooks=extra_hooks)


_TRAIN = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {repo!r})
    from vitdet_bench.engine import HookBase, default_argument_parser, main

    class Hold(HookBase):
        # At iteration {at}: tell the test ({ready}), then wait for its {release} file (or SIGTERM itself).
        def before_step(self):
            if self.trainer.iter == {at}:
                open({ready!r}, "w").write(str(os.getpid()))
                if {sigterm}:
                    os.kill(os.getpid(), signal.SIGTERM)
                while not os.path.exists({release!r}):
                    time.sleep(0.05)

    args = default_argument_parser().parse_args(["--config-file", {config!r}, *{opts!r}])
    main(args, extra_hooks=lambda model, trainer: [Hold()])
""")


def _start_training(tmp_path, out, at=0, sigterm=False):
    ready, release = tmp_path / "ready", tmp_path / "release"
    script = tmp_path / "train.py"
    script.write_text(_TRAIN.format(repo=REPO, at=at, ready=str(ready), release=str(release), sigterm=sigterm,
                                    config=DEMO_CONFIG, opts=[*TINY, f"train.output_dir={out}"]))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read()[-3000:] + proc.stderr.read()[-3000:])
        time.sleep(0.1)
    return proc, release


def test_a_second_training_into_a_running_runs_directory_is_refused(tmp_path):
    """Issue 27 #6: two identical runs started at once into one new directory both exited 0, and
    metrics.json held every iteration twice (and two event files)."""
    out = tmp_path / "run"
    proc, release = _start_training(tmp_path, out)
    try:
        for flags in ([], ["--resume"], ["--overwrite"]):
            with pytest.raises(LockError) as e:
                run_main(*flags, *TINY, f"train.output_dir={out}")
            msg = str(e.value)
            assert f"{out} is in use: a training run is running there" in msg
            assert f"pid {proc.pid} on host {socket.gethostname()}" in msg
            assert "or set train.output_dir= to another directory" in msg and f"delete {out / 'run.lock'}" in msg
    finally:
        release.write_text("")
        stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    rows = [json.loads(line) for line in open(out / "metrics.json")]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert sum(f.startswith("events.out.tfevents") for f in os.listdir(out)) == 1
    assert not (out / "run.lock").exists()
    assert "is in use" not in open(out / "log.txt").read()  # the refused runs wrote nothing there


def test_a_stale_lock_of_a_dead_run_is_taken_over_and_logged(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "what": "training run"}))
    run_main(*TINY, f"train.output_dir={out}")
    log = open(out / "log.txt").read()
    assert f"Took over the stale lock {out / 'run.lock'} of pid {dead.pid} on host {socket.gethostname()}" in log
    assert not (out / "run.lock").exists()


class _Raise(HookBase):
    def after_step(self):
        raise RuntimeError("disk on fire")


def test_the_lock_is_released_when_a_run_fails(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_main(*TINY, f"train.output_dir={out}", extra_hooks=lambda model, trainer: [_Raise()])
    assert not (out / "run.lock").exists()
    assert "Training failed: RuntimeError: disk on fire" in open(out / "log.txt").read()


def test_sigterm_is_the_last_line_of_log_txt_and_releases_the_lock(tmp_path):
    """A vague one: SIGTERM left no line in log.txt."""
    out = tmp_path / "run"
    proc, _ = _start_training(tmp_path, out, at=1, sigterm=True)
    proc.communicate(timeout=600)
    assert proc.returncode == 128 + signal.SIGTERM
    last = open(out / "log.txt").read().rstrip().splitlines()[-1]
    assert "Training terminated by SIGTERM; --resume continues from the last checkpoint" in last
    assert not (out / "run.lock").exists()
