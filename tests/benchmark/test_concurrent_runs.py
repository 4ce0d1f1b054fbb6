"""benchmark.concurrent_runs (benchmark/scheduler.py): runs side by side as processes, each with its
share of the cores, its own run directory and log; what depends on another run waits for it."""

import json
import os
import time

from vitdet_bench.benchmark import Runner, load_benchmark
from vitdet_bench.benchmark.scheduler import Task, TaskQueue
from vitdet_bench.config import LazyConfig

from conftest import REPO

BENCH = """
benchmark = dict(
    name="two_at_once",
    output_dir="{out}",
    concurrent_runs=2,
    detection_overrides=["train.max_iter=3", "train.eval_period=0", "dataloader.train.total_batch_size=2",
                         "lr_multiplier.warmup_iters=1", "train.checkpointer.period=0", "train.log_period=1",
                         "dataloader.test.dataset.names=demo_minival"],
    pretrain_overrides=["train.max_iter=2", "lr_multiplier.warmup_iters=1", "dataloader.train.total_batch_size=4",
                        "train.log_period=1", "dataloader.train.dataset.size=64"],
    tide=False,
    cost=False,
    search=dict(mode="grid", lr=dict(center=4e-4, factors=[1.0, 2.0]), weight_decay=dict(center=0.1, factors=[1.0]),
                max_rounds=0, grid_schedule=dict(iters=2), train_split="demo_train_search",
                select_split="demo_minival"),
    inits=dict(random=dict(config="{repo}/configs/demo/bench/random.py"),
               mae=dict(config="{repo}/configs/demo/bench/mae.py",
                        pretrain=[dict(name="mae", config="{repo}/projects/MAE/configs/mae_vit_tiny_demo.py")])),
)
"""


def _intervals(spec, prefix):
    stages = json.load(open(os.path.join(spec.output_dir, "stages.json")))
    return {s["stage"]: (s["start_s"], s["start_s"] + s["wall_s"]) for s in stages if s["stage"].startswith(prefix)}


def test_two_runs_at_once_each_in_its_own_process_and_directory(tmp_path, demo_root, monkeypatch):
    monkeypatch.setenv("VITDET_BENCH_CACHE", os.environ["VITDET_BENCH_CACHE"])
    path = tmp_path / "bench.py"
    path.write_text(BENCH.format(out=tmp_path / "out", repo=REPO))
    spec = load_benchmark(str(path))
    runner = Runner(spec, progress=False)
    runner.run()
    results = {r.name: r for r in runner.collect()}
    assert {n: r.status for n, r in results.items()} == {"random": "complete", "mae": "complete"}, \
        {n: r.problems for n, r in results.items()}
    # Random's search points start with MAE's pre-training (nothing to wait for): runs overlapped.
    starts = _intervals(spec, "pre-train mae")["pre-train mae/mae"]
    random_search = _intervals(spec, "search random")["search random"]
    assert random_search[0] < starts[1]
    # Each run: its own directory, log and config; the final uses the search's choice; one thread each.
    for name in ("random", "mae"):
        run_dir = spec.run_dir(name)
        cfg = LazyConfig.load(os.path.join(run_dir, "config.yaml"))
        assert cfg.optimizer.lr == runner.search_state(next(i for i in spec.inits if i.name == name)).chosen["lr"]
        info = json.load(open(os.path.join(run_dir, "run_info.json")))
        assert info["concurrent_runs"] == 2 and info["train_time_s"] > 0 and info["train_images"] == 2000
        assert os.path.isfile(os.path.join(run_dir, "console.log")) and os.path.isfile(os.path.join(run_dir, "log.txt"))
    mae_log = open(os.path.join(spec.run_dir("mae"), "log.txt")).read()
    assert spec.pretrain_dir("mae", "mae") in mae_log  # fine-tuned from the export, after the pre-training
    # Running again starts no process: everything is finished.
    import vitdet_bench.benchmark.scheduler as scheduler

    def refuse(self, task):
        raise AssertionError(f"{task.name} started again")

    monkeypatch.setattr(scheduler.TaskQueue, "_start", refuse)
    Runner(spec, progress=False).run()


def test_the_queue_keeps_to_its_slots_and_resumes_a_stream_after_its_batch(tmp_path):
    """A stream's next batch comes only after its current one has ended; never more than `slots`
    processes run; a failed task is reported to its callback."""
    events = []

    def stream(name, sizes):
        for round_, size in enumerate(sizes):
            events.append((name, "batch", round_, time.perf_counter()))
            yield [Task(f"{name}-{round_}-{k}", "train", ["--help"], str(tmp_path / f"{name}{round_}{k}.log"),
                        lambda ok, wall, n=f"{name}-{round_}-{k}": events.append((n, "done", ok, time.perf_counter())))
                   for k in range(size)]

    queue = TaskQueue(slots=2, threads=1)
    seen = []
    queue.on_progress = lambda finished, known, running: seen.append(len(running))
    queue.run([stream("a", [2, 1]), stream("b", [1])], poll_s=0.05)
    assert max(seen) == 2
    done = {e[0]: e[3] for e in events if e[1] == "done"}
    a1 = next(e[3] for e in events if e[:3] == ("a", "batch", 1))
    assert a1 >= max(done["a-0-0"], done["a-0-1"])  # round 1 planned after round 0 ended
    assert all(e[2] for e in events if e[1] == "done") and len(done) == 4  # --help exits 0


def test_a_free_slot_goes_to_the_task_with_the_most_work_behind_it(tmp_path):
    """Longest path first: a later stream's pre-training (3 stages left) starts before an earlier
    stream's final run (1 stage left); equal priorities keep the streams' order."""
    started = []

    def stream(name, priority):
        yield [Task(name, "train", ["--help"], str(tmp_path / f"{name}.log"), priority=priority)]

    queue = TaskQueue(slots=1, threads=1)
    queue._start = lambda task, start=queue._start: (started.append(task.name), start(task))[1]
    queue.run([stream("random-final", 1), stream("mae-pretrain", 3), stream("beit-tokenizer", 3)], poll_s=0.05)
    assert started == ["mae-pretrain", "beit-tokenizer", "random-final"]
