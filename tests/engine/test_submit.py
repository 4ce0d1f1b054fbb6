"""Cluster submission with submitit: the Slurm path against the sbatch scripts it writes (fake
sbatch / sacct / squeue on PATH: no cluster), the local executor running a tiny benchmark for real
in other processes (chained jobs, collection, a failed job reported with its log), and the
one-node multi-process launches (torchrun, a 2-task submitit job) over Gloo."""

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

from vitdet_bench.benchmark import Runner, load_benchmark
from vitdet_bench.engine.submit import (
    JobRecord,
    SubmitOptions,
    ToolJob,
    job_status,
    parse_time_limit,
    read_jobs,
    strip_launcher_arguments,
)

from helpers import DEMO_CONFIG, FAST_OVERRIDES, REPO
from helpers.slurm import fake_slurm, sbatch_options


def test_time_limits_read_as_slurm_reads_them():
    assert parse_time_limit("90") == 90 and parse_time_limit(45) == 45
    assert parse_time_limit("10:30") == 11  # MM:SS, rounded up
    assert parse_time_limit("72:00:00") == 4320
    assert parse_time_limit("3-00:00:00") == 4320 and parse_time_limit("1-12") == 2160
    assert parse_time_limit("2-1:30") == 2970
    for bad in ("3 days", "", "1:2:3:4", "0"):
        with pytest.raises(ValueError, match="--time"):
            parse_time_limit(bad)


def test_launcher_flags_are_removed_from_the_jobs_command():
    argv = ["--config-file", "c.py", "--launcher", "slurm", "--partition=gpu", "--nodes", "2", "--resume",
            "--gpus-per-node", "8", "--time", "1-00:00", "--account", "a", "--constraint", "h100", "--qos", "high",
            "--mem-gb", "500", "--cpus-per-task", "10", "--job-dir", "/j", "--num-gpus", "8", "train.max_iter=10"]
    assert strip_launcher_arguments(argv) == ["--config-file", "c.py", "--resume", "--num-gpus", "8",
                                              "train.max_iter=10"]
    with pytest.raises(ValueError, match="--launcher local runs on this machine only: --nodes must be 1"):
        SubmitOptions(launcher="local", nodes=2).check()


BENCH = """
benchmark = dict(
    name="tiny",
    output_dir="{out}",
    seeds={seeds},
    detection_overrides=["train.max_iter=2", "train.eval_period=0", "dataloader.train.total_batch_size=2",
                         "lr_multiplier.warmup_iters=1", "train.checkpointer.period=0", "train.log_period=1",
                         "dataloader.test.dataset.names=demo_minival"],
    pretrain_overrides=["train.max_iter=2", "lr_multiplier.warmup_iters=1", "dataloader.train.total_batch_size=4",
                        "train.log_period=1", "dataloader.train.dataset.size=64"],
    bootstrap=dict(resamples=20, level=0.95, seed=0),
    tide=False,
    cost=False,
    # Job chaining is under test: every pre-training is a job, not a product of an earlier test.
    reuse_pretraining=False,
    inits=dict({inits}),
)
"""
RANDOM = 'random=dict(config="{repo}/configs/demo/bench/random.py"),'
MAE = ('mae=dict(config="{repo}/configs/demo/bench/mae.py", pretrain=[dict(name="mae", '
       'config="{repo}/projects/MAE/configs/mae_vit_tiny_demo.py")]),')
BEIT = ('beit=dict(config="{repo}/configs/demo/bench/beit.py", pretrain=['
        'dict(name="tokenizer", tool="tokenizer", config="{repo}/projects/BEiT/configs/tokenizer_vq_demo.py"),'
        'dict(name="beit", config="{repo}/projects/BEiT/configs/beit_vit_tiny_demo.py",'
        ' overrides=["tokenizer.path={tokenizer}/tokenizer_final.pth"])]),')
# Pre-training that fails at once (AdamW refuses a negative lr), and the fine-tuning that needs it.
BROKEN = ('broken=dict(config="{repo}/configs/demo/bench/mae.py", pretrain=[dict(name="mae", '
          'config="{repo}/projects/MAE/configs/mae_vit_tiny_demo.py", overrides=["optimizer.lr=-1"])]),')


def _benchmark(tmp_path, inits, seeds=1):
    text = BENCH.format(out=tmp_path / "out", seeds=seeds, inits="".join(inits)).replace("{repo}", REPO)
    path = tmp_path / "bench.py"
    path.write_text(text)
    return load_benchmark(str(path))


def test_slurm_jobs_chain_fine_tuning_after_pre_training(tmp_path, monkeypatch):
    record = fake_slurm(tmp_path, monkeypatch)
    spec = _benchmark(tmp_path, [RANDOM, MAE, BEIT], seeds=2)
    runner = Runner(spec, progress=False)
    options = SubmitOptions(launcher="slurm", nodes=2, gpus_per_node=8, timeout_min=parse_time_limit("2-00:00:00"),
                            partition="gpu", account="vision", constraint="h100", qos="high", mem_gb=480,
                            cpus_per_task=10)
    records = runner.submit(options)
    by_name = {r.name: r for r in records}
    assert list(by_name) == ["random/finetune", "random/finetune-seed1", "mae/pretrain-mae", "mae/finetune",
                             "mae/finetune-seed1", "beit/pretrain-tokenizer", "beit/pretrain-beit", "beit/finetune",
                             "beit/finetune-seed1"]
    ids = {name: r.job_id for name, r in by_name.items()}
    expected_after = {"random/finetune": None, "random/finetune-seed1": None, "mae/pretrain-mae": None,
                      "mae/finetune": ids["mae/pretrain-mae"], "mae/finetune-seed1": ids["mae/pretrain-mae"],
                      "beit/pretrain-tokenizer": None, "beit/pretrain-beit": ids["beit/pretrain-tokenizer"],
                      "beit/finetune": ids["beit/pretrain-beit"], "beit/finetune-seed1": ids["beit/pretrain-beit"]}
    jobs = {j.name: j for j in runner.jobs(8, 2)}
    for name, r in by_name.items():
        sbatch = sbatch_options(record, r.job_id)
        assert sbatch["partition"] == "gpu" and sbatch["account"] == "vision" and sbatch["constraint"] == "h100"
        assert sbatch["qos"] == "high" and sbatch["mem"] == "480G" and sbatch["time"] == "2880"
        assert sbatch["nodes"] == "2" and sbatch["ntasks-per-node"] == "8" and sbatch["gpus-per-node"] == "8"
        assert sbatch["cpus-per-task"] == "10" and sbatch["job-name"] == name.replace("/", "_")
        after = expected_after[name]
        assert sbatch.get("dependency") == (f"afterok:{after}" if after else None), name
        assert sbatch.get("kill-on-invalid-dep") == ("yes" if after else None)
        assert r.after == ([after] if after else []) and r.tasks == 16
        # The job runs exactly the command --print-commands shows for it.
        assert r.command == jobs[name].command and r.stderr.endswith(f"{r.job_id}/{r.job_id}_0_log.err")
        from submitit.core.utils import pickle_load

        submitted = pickle_load(os.path.join(r.folder, f"{r.job_id}_submitted.pkl")).function
        assert isinstance(submitted, ToolJob) and submitted.argv == jobs[name].argv
    mae = next(i for i in spec.inits if i.name == "mae")
    seed1 = jobs["mae/finetune-seed1"].argv
    assert seed1[:7] == ["--config-file", mae.config, "--num-gpus", "8", "--num-machines", "2", "--resume"]
    assert seed1[7:] == runner.detection_overrides(mae, 1)
    printed = "\n".join(runner.commands(8, 2))  # --print-commands: the same jobs, plus the collect line
    assert all(j.command in printed for j in jobs.values()) and printed.count("python tools/") == len(jobs) + 1
    assert [r.name for r in read_jobs(runner.jobs_file)] == list(by_name)

    # Collection reads the scheduler: a failed pre-training, a fine-tuning left pending on it.
    (record / "states").write_text(f"{ids['mae/pretrain-mae']} FAILED\n{ids['mae/finetune']} PENDING\n"
                                   f"{ids['random/finetune']} RUNNING\n{ids['beit/finetune']} CANCELLED\n")
    (record / "reasons").write_text(f"{ids['mae/finetune']} DependencyNeverSatisfied\n")
    states = {s.record.name: (s.state, s.detail) for s in runner.job_statuses()}
    assert states["mae/pretrain-mae"] == ("failed", "FAILED")
    assert states["mae/finetune"] == ("pending", "PENDING (DependencyNeverSatisfied)")
    assert states["random/finetune"] == ("running", "RUNNING") and states["beit/finetune"][0] == "failed"
    assert states["random/finetune-seed1"][0] == "unknown"

    # Submitting again: running / pending jobs are kept unless they wait for a job submitted anew
    # (then cancelled and resubmitted after it); a finished pre-training is not run again and its
    # fine-tunings need no dependency.
    os.makedirs(spec.pretrain_dir("beit", "beit"))
    open(os.path.join(spec.pretrain_dir("beit", "beit"), "backbone_final.pth"), "w").close()
    again = {r.name: r for r in runner.submit(options)}
    assert again["random/finetune"].job_id == ids["random/finetune"]
    new_pretrain = again["mae/pretrain-mae"].job_id
    assert new_pretrain != ids["mae/pretrain-mae"] and again["mae/finetune"].after == [new_pretrain]
    assert sbatch_options(record, again["mae/finetune"].job_id)["dependency"] == f"afterok:{new_pretrain}"
    assert (record / "cancelled").read_text().split() == [ids["mae/finetune"]]
    assert "beit/pretrain-beit" not in again and "beit/pretrain-tokenizer" not in again
    assert "dependency" not in sbatch_options(record, again["beit/finetune"].job_id)
    assert {r.name: r.job_id for r in read_jobs(runner.jobs_file)}["mae/pretrain-mae"] == new_pretrain


def test_slurm_launcher_without_slurm_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    runner = Runner(_benchmark(tmp_path, [RANDOM]), progress=False)
    with pytest.raises(RuntimeError, match="--launcher slurm needs Slurm's sbatch and srun on PATH.*--launcher local"):
        runner.submit(SubmitOptions(launcher="slurm"))


def _wait(runner, timeout_s=600):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        statuses = runner.job_statuses()
        if statuses and all(s.finished for s in statuses):
            return statuses
        time.sleep(2)
    raise TimeoutError([(s.record.name, s.state) for s in runner.job_statuses()])


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_local_jobs_run_a_benchmark_and_collect_it_with_failures_named(tmp_path, demo_root, capsys):
    """submitit's local executor runs every job in its own process: the MAE fine-tuning starts after
    its pre-training; a failed pre-training fails the fine-tuning that needs it; --collect-only
    lists both with their log files, gathers the finished runs and exits 1."""
    spec = _benchmark(tmp_path, [MAE, BROKEN])
    bench = _tool("benchmark")
    assert bench.main(["--config-file", spec.source_file, "--launcher", "local", "--gpus-per-node", "1",
                       "--time", "15", "--no-progress"]) == 0
    runner = Runner(spec, progress=False)
    statuses = {s.record.name: s for s in _wait(runner)}
    assert {n: s.state for n, s in statuses.items()} == {
        "mae/pretrain-mae": "completed", "mae/finetune": "completed", "broken/pretrain-mae": "failed",
        "broken/finetune": "failed"}
    assert "Invalid learning rate: -1" in statuses["broken/pretrain-mae"].detail
    assert "broken/pretrain-mae" in statuses["broken/finetune"].detail
    assert statuses["broken/pretrain-mae"].record.stderr in statuses["broken/finetune"].detail
    assert "Invalid learning rate" in open(statuses["broken/pretrain-mae"].record.stderr).read()
    assert statuses["mae/finetune"].record.after == [statuses["mae/pretrain-mae"].record.job_id]
    # The fine-tuning started from the pre-training's export, written before it began.
    mae_log = open(os.path.join(spec.run_dir("mae"), "log.txt")).read()
    assert "pretrain/mae_mae/backbone_final.pth" in mae_log
    capsys.readouterr()
    assert bench.main(["--config-file", spec.source_file, "--collect-only", "--no-progress"]) == 1
    out = capsys.readouterr().out
    for name in ("broken/pretrain-mae", "broken/finetune"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {name} "))
        assert "| failed " in row and statuses[name].record.stderr in row
    assert "| mae/pretrain-mae " in out and "| mae/finetune " in out
    results = {r.name: r.status for r in runner.collect()}
    assert results == {"mae": "complete", "broken": "missing"}
    assert os.path.isfile(os.path.join(spec.output_dir, "report.md"))


def _gloo_env():
    return {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}


TWO_STEPS = [*FAST_OVERRIDES, "train.max_iter=2", "train.checkpointer.period=100", "train.eval_period=-1",
             "train.log_period=1"]
SYNC_BN = ["model.backbone.norm=SyncBN", "model.roi_heads.box_head.norm=SyncBN",
           "model.roi_heads.mask_head.norm=SyncBN"]


def test_torchrun_one_node_two_processes_with_syncbn_config(tmp_path, demo_root):
    """torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) makes a 2-process Gloo run; SyncBN in
    the config becomes BatchNorm off CUDA (torch's SyncBatchNorm needs CUDA), and the log says so."""
    out = str(tmp_path / "torchrun")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           os.path.join(REPO, "tools", "lazyconfig_train_net.py"), "--config-file", DEMO_CONFIG, *TWO_STEPS, *SYNC_BN,
           f"train.output_dir={out}"]
    proc = subprocess.run(cmd, env=_gloo_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = open(os.path.join(out, "log.txt")).read()
    assert "Rank 0 of 2" in log and "SyncBN -> BatchNorm2d (device cpu, 2 process(es))" in log
    assert "Rank 1 of 2" in open(os.path.join(out, "log.txt.rank1")).read()
    lines = [json.loads(line) for line in open(os.path.join(out, "metrics.json"))]
    assert lines[-1]["iteration"] == 1 and os.path.isfile(os.path.join(out, "model_final.pth"))


def test_tool_submits_itself_as_a_two_task_job(tmp_path, demo_root):
    """tools/lazyconfig_train_net.py --launcher local: the command (launcher flags removed) runs as one
    job of 2 tasks that find each other through submitit's environment; jobs.json records it."""
    out = tmp_path / "run"
    cmd = [sys.executable, os.path.join(REPO, "tools", "lazyconfig_train_net.py"), "--config-file", DEMO_CONFIG,
           "--launcher", "local", "--gpus-per-node", "2", "--time", "15", *TWO_STEPS, f"train.output_dir={out}"]
    with open(tmp_path / "submit.log", "w") as log:  # the job outlives the command: no pipes to wait on
        subprocess.run(cmd, env=_gloo_env(), stdout=log, stderr=subprocess.STDOUT, timeout=300, check=True)
    (rec,) = read_jobs(str(out / "jobs.json"))
    assert rec.launcher == "local" and rec.tasks == 2 and "--launcher" not in rec.command
    assert rec.command.startswith("python tools/lazyconfig_train_net.py --config-file ")
    deadline = time.time() + 600
    while not job_status(rec).finished and time.time() < deadline:
        time.sleep(2)
    status = job_status(rec)
    assert status.state == "completed", (status.detail, open(rec.stderr).read()[-3000:])
    log = open(out / "log.txt").read()
    assert "Rank 0 of 2" in log and "Command line: tools/lazyconfig_train_net.py --config-file" in log
    assert os.path.isfile(out / "log.txt.rank1") and os.path.isfile(out / "model_final.pth")


def test_job_records_round_trip_and_bad_files_name_themselves(tmp_path):
    path = tmp_path / "jobs.json"
    rec = JobRecord(name="a", job_id="1", launcher="slurm", folder="f", stdout="o", stderr="e", command="c",
                    output_dir="d")
    from vitdet_bench.engine.submit import write_jobs

    write_jobs(str(path), [rec])
    write_jobs(str(path), [JobRecord(**{**rec.to_dict(), "name": "b", "job_id": "2"})])
    assert [(r.name, r.job_id) for r in read_jobs(str(path))] == [("a", "1"), ("b", "2")]
    path.write_text('{"jobs": [{"name": "a", "jobid": "1"}]}')
    with pytest.raises(ValueError, match=r"jobs.json: job 0 has unknown keys \['jobid'\]"):
        read_jobs(str(path))
    path.write_text('{"jobs": [')
    with pytest.raises(ValueError, match="jobs.json: not valid JSON"):
        read_jobs(str(path))
