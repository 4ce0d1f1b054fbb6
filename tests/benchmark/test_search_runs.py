"""The tuning search as a benchmark stage (benchmark/runner.py + search.py), with tiny real runs:
points are ordinary runs under search/<init>/, reused when finished and resumed when not, the
final run uses the argmax, --search none is today's run; the Slurm job graph (fake sbatch) and
the local executor (real processes) chain points, selection steps and finals."""

import json
import os
import time

from vitdet_bench.benchmark import Runner, load_benchmark, write_report
from vitdet_bench.benchmark.search import SearchPoint
from vitdet_bench.config import LazyConfig
from vitdet_bench.engine.submit import SubmitOptions, job_status, read_jobs

from conftest import REPO
from helpers.slurm import fake_slurm, sbatch_options

BENCH = """
benchmark = dict(
    name="tiny_search",
    output_dir="{out}",
    detection_overrides=["train.max_iter=4", "train.eval_period=2", "dataloader.train.total_batch_size=2",
                         "lr_multiplier.warmup_iters=1", "train.checkpointer.period=0", "train.log_period=1",
                         "dataloader.test.dataset.names=demo_minival"],
    bootstrap=dict(resamples=20, level=0.95, seed=0),
    tide=False,
    cost=False,
    search=dict(mode="{mode}", lr=dict(center=4e-4, factors=[1.0, 4.0]), weight_decay=dict(center=0.1, factors=[1.0]),
                max_rounds=0, grid_schedule=dict(iters=2), train_split="demo_train_search",
                select_split="demo_minival"),
    inits=dict(random=dict(config="{repo}/configs/demo/bench/random.py")),
)
"""


def _spec(tmp_path, mode="grid"):
    path = tmp_path / "bench.py"
    path.write_text(BENCH.format(out=tmp_path / "out", repo=REPO, mode=mode))
    return load_benchmark(str(path))


def _point_ap(run_dir):
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.json"))]
    return [r["bbox/AP"] for r in rows if "bbox/AP" in r][-1]


def test_points_are_runs_the_final_uses_the_argmax_and_finished_points_are_reused(tmp_path, demo_root, monkeypatch):
    spec = _spec(tmp_path)
    runner = Runner(spec, progress=False)
    runner.run()
    init = spec.inits[0]
    points = [SearchPoint("grid", lr, 0.1, 0.0, 2) for lr in (4e-4, 1.6e-3)]
    aps = {}
    for p in points:
        d = runner.point_dir(init, p)
        cfg = LazyConfig.load(os.path.join(d, "config.yaml"))
        assert cfg.optimizer.lr == p.lr and cfg.train.max_iter == 2 and cfg.train.eval_period == 0
        assert cfg.dataloader.train.dataset.names == "demo_train_search"  # the held-out protocol's training images
        assert cfg.dataloader.test.dataset.names == "demo_minival"
        aps[p.lr] = _point_ap(d)
    best = max(aps, key=lambda lr: (aps[lr], -lr))
    final = LazyConfig.load(os.path.join(spec.run_dir("random"), "config.yaml"))
    assert final.optimizer.lr == best and final.optimizer.weight_decay == 0.1  # the recorded argmax
    assert final.model.backbone.bottom_up.net.drop_path_rate == 0.0 and final.train.max_iter == 4
    assert final.dataloader.train.dataset.names == "demo_train"
    # The report: the grid, the choice, the cost; summary.json's search entry.
    results = runner.collect()
    out = write_report(spec, results, tide=False, extras=runner.collect_extras())
    summary = json.load(open(os.path.join(spec.output_dir, "summary.json")))
    search = summary["inits"][0]["search"]
    assert search["chosen"] == {"lr": best, "weight_decay": 0.1, "drop_path": 0.0} and search["expanded"] == 0
    assert {p["lr"]: p["box_ap"] for p in search["points"]} == aps and search["split"] == "demo_minival"
    assert all(p["train_time_s"] > 0 and os.path.isdir(p["run_dir"]) for p in search["points"])
    assert f"{best:.3g} / 0.1 / 0 (search)" in out["summary_rows"][0]
    report = open(os.path.join(spec.output_dir, "report.md")).read()
    assert ("## How each initialization was tuned (search)" in report
            and "![random grid](search/random_grid.png)" in report)
    assert os.path.isfile(os.path.join(spec.output_dir, "search", "random_grid.png"))
    # Run again: nothing finished is trained again; a point whose run is unfinished is resumed alone.
    calls = []
    monkeypatch.setattr(Runner, "_train_detector",
                        lambda self, init, opts, run_dir, label, seed=0: calls.append(run_dir))
    Runner(spec, progress=False).run()
    assert calls == []
    victim = runner.point_dir(init, points[1])
    rows = open(os.path.join(victim, "metrics.json")).read().splitlines()
    with open(os.path.join(victim, "metrics.json"), "w") as f:  # killed before its final evaluation
        f.write("\n".join(r for r in rows if "bbox/AP" not in r) + "\n")
    Runner(spec, progress=False).run()
    assert calls == [victim]


def test_a_failed_point_is_reported_and_the_selection_uses_the_rest(tmp_path, demo_root, monkeypatch):
    spec = _spec(tmp_path)
    from vitdet_bench.benchmark import runner as runner_module

    original = Runner._train_detector

    def flaky(self, init, opts, run_dir, label, seed=0):
        if "lr0.0016" in run_dir:
            raise FloatingPointError("Loss became infinite or NaN at iteration 1 (a diverged point)")
        return original(self, init, opts, run_dir, label, seed)

    monkeypatch.setattr(runner_module.Runner, "_train_detector", flaky)
    runner = Runner(spec, progress=False)
    runner.run()
    summary = runner.search_summary(spec.inits[0])
    assert summary["chosen"]["lr"] == 4e-4 and len(summary["failed"]) == 1 and "lr0.0016" in summary["failed"][0]
    marker = json.load(open(os.path.join(runner.point_dir(spec.inits[0], SearchPoint("grid", 1.6e-3, 0.1, 0.0, 2)),
                                         "FAILED.json")))
    assert "FloatingPointError" in marker["why"] and marker["log"].endswith("log.txt")
    text = "\n".join(__import__("vitdet_bench.benchmark.report_sections", fromlist=["x"]).search_markdown(
        {"random": summary}, str(tmp_path), "cpu"))
    assert "failed and left out of the selection" in text


def test_search_none_is_the_run_of_before(tmp_path):
    spec = _spec(tmp_path, mode="none")
    runner = Runner(spec, progress=False)
    init = spec.inits[0]
    assert runner.detection_overrides(init) == (list(spec.detection_overrides) +
                                                ["train.init_checkpoint=",
                                                 f"train.output_dir={spec.run_dir('random')}"])
    assert [j.name for j in runner.jobs(1)] == ["random/finetune"]


def test_held_out_selection_images_are_disjoint_from_training_and_val(demo_root):
    """The demo's search trains on demo_train_search and selects on demo_select: no image file of
    one is in the other or in demo_val (the split the table reports)."""
    from vitdet_bench.data.catalog import get_dataset_spec

    def files(name):
        spec = get_dataset_spec(name)
        data = json.load(open(spec.json_file))
        return {os.path.join(spec.image_root, im["file_name"]) for im in data["images"]}

    demo = load_benchmark(os.path.join(REPO, "configs/benchmark/demo.py"))
    train, select, val = files(demo.search.train_split), files(demo.search.select_split), files("demo_val")
    assert len(select) == 200 and len(train) == 1800
    assert not train & select and not select & val and not train & val


def test_slurm_graph_points_then_a_light_selection_step_then_the_finals(tmp_path, monkeypatch):
    """Round 1's points are GPU jobs; the selection step runs after all of them (afterany: a failed
    point does not cancel it) as one CPU task; run on the cluster, it marks a failed point, selects
    among the rest and submits the final run."""
    record = fake_slurm(tmp_path, monkeypatch)
    spec = _spec(tmp_path)
    runner = Runner(spec, progress=False)
    options = SubmitOptions(launcher="slurm", nodes=1, gpus_per_node=8, partition="gpu")
    argv = ["--config-file", spec.source_file, *options.launcher_argv()]
    records = {r.name: r for r in runner.submit(options, step_argv=argv)}
    points = [n for n in records if "/search-grid_" in n]
    (select,) = [n for n in records if "/search-select" in n]
    assert len(points) == 2 and "random/finetune" not in records
    for name in points:
        sb = sbatch_options(record, records[name].job_id)
        assert sb["gpus-per-node"] == "8" and sb["ntasks-per-node"] == "8" and "dependency" not in sb
    sb = sbatch_options(record, records[select].job_id)
    assert sb["dependency"] == "afterany:" + ":".join(records[n].job_id for n in points)
    assert "gpus-per-node" not in sb and sb["ntasks-per-node"] == "1" and "kill-on-invalid-dep" not in sb
    assert "--search-step random" in records[select].command and "--launcher slurm" in records[select].command
    # The cluster ran the points: the first completed (its run directory is complete), the second failed.
    good, bad = sorted(points)
    done = {records[good].output_dir}
    import vitdet_bench.benchmark.runner as runner_module

    real = runner_module.collect_run

    def fake_collect(name, run_dir):
        r = real(name, run_dir)
        if run_dir in done:
            r.status, r.metrics = "complete", {"bbox": {"AP": 3.0}, "segm": {"AP": 2.0}}
        return r

    monkeypatch.setattr(runner_module, "collect_run", fake_collect)
    (record / "states").write_text(f"{records[good].job_id} COMPLETED\n{records[bad].job_id} FAILED\n")
    finals = runner.search_step("random", options, argv)
    assert [r.name for r in finals] == ["random/finetune"]
    assert os.path.isfile(os.path.join(records[bad].output_dir, "FAILED.json"))
    final_argv = sbatch_options(record, finals[0].job_id)
    assert "dependency" not in final_argv and finals[0].tasks == 8
    lr = runner.search_state(spec.inits[0]).chosen["lr"]
    assert f"optimizer.lr={lr!r}" in finals[0].command and str(lr) in good
    assert {r.name for r in read_jobs(runner.jobs_file)} >= set(records) | {"random/finetune"}


def test_local_executor_runs_points_selection_and_final_in_order(tmp_path, demo_root):
    """submitit's local executor, real processes: the selection step waits for both points, then
    submits the final run, which trains with the chosen lr; --collect-only then reports it."""
    from vitdet_bench.benchmark.cli import main

    spec = _spec(tmp_path)
    assert main(["--config-file", spec.source_file, "--launcher", "local", "--time", "15", "--no-progress"]) == 0
    runner = Runner(spec, progress=False)
    deadline = time.time() + 900
    while time.time() < deadline:
        states = {r.name: job_status(r).state for r in read_jobs(runner.jobs_file)}
        if "random/finetune" in states and all(s in ("completed", "failed") for s in states.values()):
            break
        time.sleep(3)
    assert states.get("random/finetune") == "completed", states
    assert all(s == "completed" for s in states.values()), states
    chosen = runner.search_state(spec.inits[0]).chosen
    final = LazyConfig.load(os.path.join(spec.run_dir("random"), "config.yaml"))
    assert final.optimizer.lr == chosen["lr"]
    records = {r.name: r for r in read_jobs(runner.jobs_file)}
    select = next(r for n, r in records.items() if "/search-select" in n)
    assert select.tasks == 1 and set(select.after) == {r.job_id for n, r in records.items() if "/search-grid_" in n}
    assert main(["--config-file", spec.source_file, "--collect-only", "--no-progress"]) == 0
