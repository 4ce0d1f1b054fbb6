"""Several runs at once on one machine: the benchmark's ``concurrent_runs`` (``Runner.run``).

The demo's runs are small: on a 2-core CPU one detector fine-tuning with 2 threads is only ~1.2x
as fast as with 1 (its many small operators do not split across cores), so two fine-tunings side
by side with one thread each do about 1.6x the work of one after the other; on a GPU a demo
detector leaves the device idle between kernel launches, and several runs fill it. Each run is its
own process (the command ``--print-commands`` shows for it, with ``--resume``), with its share of
the threads and data-loading workers, its own run directory and ``log.txt``; the console shows one
progress line.

A :class:`TaskQueue` holds one stream of tasks per initialization: each stream yields the tasks that
may run now (its pre-training chain one step at a time, a search round's points all at once, its
final fine-tunings) and is resumed when they have all ended, so what comes next can depend on what
they produced (the search's next round). Streams run side by side up to ``slots`` processes; a free
slot goes to the waiting task with the most work still behind it in its stream (``Task.priority``:
an initialization's pre-training before another's search or final run), the earlier stream on a
tie. That is the longest-path-first rule of list scheduling: on the CPU demo, started in stream
order, random's search and final ran first and MAE's chain (pre-training, probe, search, final) last,
alone on one of the two cores.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Generator, Iterable

from ..engine.submit import ENTRY_POINTS

__all__ = ["Task", "TaskQueue", "run_tasks", "threads_per_run"]

logger = logging.getLogger("vitdet_bench.benchmark")


@dataclass
class Task:
    """One run as a process: ``python <tool's script> <argv>``.

    Attributes:
        name: unique, for logs and the progress line (``mae/pretrain-mae``, ``mae/search-...``).
        tool: a key of :data:`~vitdet_bench.engine.submit.ENTRY_POINTS`.
        argv: the tool's arguments.
        log: where the process's console output goes.
        done: called in this process with ``(succeeded, wall_s)`` when it ends.
        priority: how many of its stream's stages are still to run, this one included; the queue
            starts the waiting task with the highest first.
    """

    name: str
    tool: str
    argv: list[str]
    log: str
    done: Callable[[bool, float], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    priority: int = 0


# A stream yields lists of tasks; after each list has ended it is resumed.
Stream = Generator[list[Task], None, None]


def threads_per_run(slots: int) -> int:
    """Intra-op threads of each of ``slots`` concurrent runs: the cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // max(slots, 1))


def _script(tool: str) -> str:
    import vitdet_bench

    root = os.path.dirname(os.path.dirname(os.path.abspath(vitdet_bench.__file__)))
    return os.path.join(root, ENTRY_POINTS[tool][2])


class TaskQueue:
    """Runs streams of tasks, at most ``slots`` processes at a time, the highest ``priority`` first
    (the earlier stream on a tie).

    Args:
        slots: processes at once.
        threads: ``OMP_NUM_THREADS`` (and torch's) of each process.
        on_progress: called with ``(finished, known, running names)`` whenever that changes.
    """

    def __init__(self, slots: int, threads: int, on_progress: Callable[[int, int, list[str]], None] | None = None):
        if slots < 1:
            raise ValueError(f"concurrent runs must be >= 1, got {slots}")
        self.slots = slots
        self.threads = threads
        self.on_progress = on_progress or (lambda *a: None)

    def _start(self, task: Task) -> subprocess.Popen:
        os.makedirs(os.path.dirname(os.path.abspath(task.log)), exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads),
               "VITDET_BENCH_CONSOLE_LEVEL": "WARNING", **task.env}
        log = open(task.log, "ab")
        logger.info("Starting %s (log %s)", task.name, task.log)
        return subprocess.Popen([sys.executable, _script(task.tool), *task.argv], stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=os.getcwd())

    def run(self, streams: Iterable[Stream], poll_s: float = 0.5) -> None:
        """Run every stream to its end. A stream whose generator raises is stopped (the error logged);
        the others go on. Ctrl-C or SIGTERM stop every running process."""
        lanes = [_Lane(stream) for stream in streams]
        running: dict[str, tuple[subprocess.Popen, Task, float, _Lane]] = {}
        finished = 0
        try:
            while True:
                for lane in lanes:
                    lane.advance()
                lanes = [lane for lane in lanes if not lane.ended]
                if not lanes and not running:
                    break
                while len(running) < self.slots:  # start what fits, the most work behind it first
                    waiting = [(-lane.todo[0].priority, i) for i, lane in enumerate(lanes) if lane.todo]
                    if not waiting:
                        break
                    lane = lanes[min(waiting)[1]]
                    task = lane.todo.pop(0)
                    running[task.name] = (self._start(task), task, time.perf_counter(), lane)
                self.on_progress(finished, finished + len(running) + sum(len(x.todo) for x in lanes), sorted(running))
                time.sleep(poll_s)
                for name, (proc, task, start, lane) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    del running[name]
                    finished += 1
                    lane.left -= 1
                    if proc.returncode != 0:
                        logger.error("%s failed (exit status %s); its log: %s", name, proc.returncode, task.log)
                    if task.done is not None:
                        task.done(proc.returncode == 0, time.perf_counter() - start)
        except BaseException:
            for proc, _, _, _ in running.values():
                proc.terminate()
            for proc, _, _, _ in running.values():
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            raise


class _Lane:
    """One stream's state: the tasks of its current batch not started yet, and how many of the
    batch have not ended."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.todo: list[Task] = []
        self.left = 0
        self.ended = False

    def advance(self) -> None:
        """Take the stream's next batch when the current one has ended (skipping empty batches)."""
        while not self.ended and self.left == 0 and not self.todo:
            try:
                batch = next(self.stream)
            except StopIteration:
                self.ended = True
                return
            except Exception as e:  # a stream that cannot go on stops alone; its tasks' records say why
                logger.error("A run stream stopped: %s: %s", type(e).__name__, e)
                self.ended = True
                return
            self.todo, self.left = list(batch), len(batch)


def run_tasks(streams: Iterable[Stream], slots: int, threads: int | None = None,
              on_progress: Callable[[int, int, list[str]], None] | None = None) -> None:
    """Run streams of tasks with :class:`TaskQueue` (``threads`` default: :func:`threads_per_run`)."""
    TaskQueue(slots, threads or threads_per_run(slots), on_progress).run(streams)
