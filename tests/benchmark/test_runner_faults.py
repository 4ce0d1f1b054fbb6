"""tools/benchmark.py loses nothing and reports every initialization (issue 27): one benchmark per output_dir
(#7), a re-run over a finished run that lost its last metrics row (#11) or holds a cut config.yaml (#12), one
initialization's corrupt checkpoint (a vague one), --collect-only --only, and --launcher local's process count.

One tiny benchmark (random init, 2 iterations, evaluated on two validation images; and an initialization whose
checkpoint is a corrupt file) is run once through the tool's main(); each case works on a copy of its output
directory and compares what the re-run leaves with what the first run wrote."""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from helpers import REPO

BENCH = """
benchmark = dict(
    name="faults",
    output_dir="{out}",
    cost=False,
    tide=False,
    bootstrap=dict(resamples=20, level=0.9, seed=0),
    detection_overrides=["train.max_iter=2", "train.eval_period=0", "dataloader.train.total_batch_size=2",
                         "lr_multiplier.warmup_iters=1", "train.checkpointer.period=0", "train.log_period=1",
                         "dataloader.test.dataset.names=runner_faults_val", "+dataloader.test.dataset.json_file={val}",
                         "+dataloader.test.dataset.image_root={image_root}"],
    inits=dict(random=dict(config="{repo}/configs/demo/bench/random.py"),
               broken=dict(config="{repo}/configs/demo/bench/mae.py", checkpoint="{broken}")),
)
"""


def _tool(name):
    spec = importlib.util.spec_from_file_location(f"{name}_tool", os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench(tmp_path_factory, demo_root):
    """The benchmark file and its output dir after one run (random complete, broken failed)."""
    root = tmp_path_factory.mktemp("runner_faults")
    val = json.load(open(os.path.join(demo_root, "val.json")))
    val["images"] = val["images"][:2]
    val["annotations"] = [a for a in val["annotations"] if a["image_id"] in {im["id"] for im in val["images"]}]
    (root / "val2.json").write_text(json.dumps(val))
    (root / "broken.pth").write_bytes(b"PK\x03\x04 half a checkpoint")
    path = root / "faults.py"
    path.write_text(BENCH.format(out=root / "out", repo=REPO, val=root / "val2.json", broken=root / "broken.pth",
                                 image_root=os.path.join(demo_root, "val")))
    code = _tool("benchmark").main(["--config-file", str(path), "--no-progress"])
    return str(path), str(root / "out"), code


def _copy(bench, tmp_path):
    """A copy of the benchmark's output dir, and the override that points the benchmark at it."""
    out = tmp_path / "out"
    shutil.copytree(bench[1], out)
    return str(out), f"output_dir={out}"


def _results(out):
    return {r["name"]: r for r in json.load(open(os.path.join(out, "results.json")))}


def test_one_initializations_corrupt_checkpoint_does_not_cost_the_others(bench):
    """A vague one: one init's corrupt checkpoint aborted the whole benchmark with a traceback and no report."""
    _, out, code = bench
    assert code == 1
    results = _results(out)
    assert results["random"]["status"] == "complete", results["random"]["problems"]
    broken = " ".join(results["broken"]["problems"])
    assert "broken fine-tuning failed: CheckpointError" in broken and "broken.pth" in broken
    assert os.path.join(out, "runs", "broken", "log.txt") in broken
    assert "`broken`" in open(os.path.join(out, "report.md")).read()
    assert not os.path.exists(os.path.join(out, "benchmark.lock"))


def test_collect_only_with_only_reports_only_those(bench, tmp_path, capsys):
    """Issue 27 #4 (item 4 of the build list): --collect-only --only random listed all initializations."""
    out, override = _copy(bench, tmp_path)
    capsys.readouterr()
    assert _tool("benchmark").main(["--config-file", bench[0], "--collect-only", "--only", "random", "--no-progress",
                                    override]) == 0
    printed = capsys.readouterr().out
    assert "| random " in printed and "broken" not in printed
    assert list(_results(out)) == ["random"]


def test_a_rerun_over_a_finished_run_that_lost_its_last_row_completes_it(bench, tmp_path):
    """Issue 27 #11: a re-run over a finished run whose metrics.json lost its last row emptied metrics.json
    ("Trained 1 iterations") and the run stayed partial forever. Now the final evaluation runs again and
    equals the one the run wrote; the earlier rows and run_info.json (the training time) are kept."""
    out, override = _copy(bench, tmp_path)
    run = os.path.join(out, "runs", "random")
    lines = open(os.path.join(run, "metrics.json")).read().splitlines()
    info = open(os.path.join(run, "run_info.json")).read()
    open(os.path.join(run, "metrics.json"), "w").write("\n".join(lines[:-1]) + "\n")
    assert _tool("benchmark").main(["--config-file", bench[0], "--only", "random", "--no-progress", override]) == 1
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.json"))]
    original = [json.loads(line) for line in lines]
    assert rows[:-1] == original[:-1] and rows[-1]["iteration"] == original[-1]["iteration"]
    for key, value in original[-1].items():
        if "/" in key:
            assert rows[-1][key] == pytest.approx(value, abs=1e-9, nan_ok=True), key
    assert open(os.path.join(run, "run_info.json")).read() == info
    assert _results(out)["random"]["status"] == "complete"


def test_a_rerun_over_a_cut_config_yaml_reports_it_and_writes_the_report(bench, tmp_path, capsys):
    """Issue 27 #12: a re-run over a run with a cut config.yaml aborted with a raw yaml ParserError and
    wrote no report (--collect-only handled the same file)."""
    out, override = _copy(bench, tmp_path)
    config = os.path.join(out, "runs", "random", "config.yaml")
    text = open(config).read()
    open(config, "w").write(text[: text.index("model:") + 40] + "\n  - [unclosed")
    os.remove(os.path.join(out, "report.md"))
    capsys.readouterr()
    assert _tool("benchmark").main(["--config-file", bench[0], "--only", "random", "--no-progress", override]) == 1
    problems = " ".join(_results(out)["random"]["problems"])
    assert f"{config} is unreadable" in problems and "delete it to resume without the check" in problems
    assert os.path.isfile(os.path.join(out, "report.md"))
    assert "random fine-tuning failed: RunDirError" in capsys.readouterr().out


_HOLD = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {repo!r})
    from vitdet_bench.benchmark import Runner

    def run(self, only=None):  # a benchmark busy running: it holds the lock until the test says go
        open({ready!r}, "w").write(str(os.getpid()))
        while not os.path.exists({release!r}):
            time.sleep(0.05)

    Runner.run = run
    sys.argv = ["tools/benchmark.py", "--config-file", {bench!r}, "--no-progress", {override!r}]
    sys.path.insert(0, os.path.join({repo!r}, "tools"))
    import benchmark

    sys.exit(benchmark.main(sys.argv[1:]))
""")


def test_a_second_benchmark_into_the_same_output_dir_is_refused(bench, tmp_path, capsys):
    """Issue 27 #7: two tools/benchmark.py runs into one output_dir both ran, into the same runs."""
    out, override = _copy(bench, tmp_path)
    os.remove(os.path.join(out, "report.md"))
    ready, release = tmp_path / "ready", tmp_path / "release"
    script = tmp_path / "hold.py"
    script.write_text(_HOLD.format(repo=REPO, ready=str(ready), release=str(release), bench=bench[0],
                                   override=override))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.1)
        for flags in ([], ["--collect-only"]):
            capsys.readouterr()
            with pytest.raises(SystemExit) as e:
                _tool("benchmark").main(["--config-file", bench[0], *flags, "--no-progress", override])
            assert e.value.code == 1
            err = capsys.readouterr().err
            assert f"{out} is in use: a benchmark is running there" in err
            assert f"pid {proc.pid} on host {socket.gethostname()}" in err and "or give another output_dir=" in err
            assert not os.path.exists(os.path.join(out, "report.md"))
    finally:
        release.write_text("")
        proc.communicate(timeout=600)
    assert os.path.isfile(os.path.join(out, "report.md")) and not os.path.exists(os.path.join(out, "benchmark.lock"))


def test_launcher_local_runs_one_process_per_job_on_a_cpu_benchmark(bench, tmp_path, monkeypatch):
    """Issue 27 (item 4 of the build list): --launcher local started 8 processes per job on a CPU benchmark
    (total_batch_size=2 is not divisible by the number of processes (8)). Now one on the CPU, the visible GPU
    count for a CUDA benchmark, 8 for Slurm; --help says so. The local job runs for real."""
    from vitdet_bench.benchmark import Runner, load_benchmark
    from vitdet_bench.benchmark.runner import default_num_gpus
    from vitdet_bench.engine.submit import job_status, read_jobs

    assert default_num_gpus("local", "cpu") == 1 and default_num_gpus("slurm", "cpu") == 8
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert default_num_gpus("local", "cuda") == 3 and default_num_gpus("local", "cpu") == 1
    monkeypatch.undo()
    help_text = subprocess.run([sys.executable, os.path.join(REPO, "tools", "benchmark.py"), "--help"],
                               capture_output=True, text=True).stdout
    assert "for --launcher local, 1 on a CPU benchmark and the visible GPU count on a CUDA one" in " ".join(
        help_text.split())
    out = tmp_path / "local"
    assert _tool("benchmark").main(["--config-file", bench[0], "--launcher", "local", "--only", "random", "--time",
                                    "15", "--no-progress", "--device", "cpu", f"output_dir={out}"]) == 0
    spec = load_benchmark(bench[0], [f"output_dir={out}"])
    runner = Runner(spec, progress=False)
    (record,) = read_jobs(runner.jobs_file)
    assert record.tasks == 1 and "--num-gpus 1" in record.command
    while not job_status(record).finished:
        time.sleep(1)
    assert job_status(record).state == "completed", job_status(record).detail
    assert runner.collect(only=["random"])[0].status == "complete"
