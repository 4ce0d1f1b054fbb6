"""The benchmark runner and TIDE: numbers equal their sources (metrics.json, tidecv called
directly), outputs name every run, unfinished runs are reported, collecting is repeatable."""

import copy
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vitdet_bench.benchmark import Runner, load_benchmark, write_report
from vitdet_bench.benchmark.collect import METRICS, collect_run
from vitdet_bench.data.demo import DEMO_VERSION
from vitdet_bench.evaluation.tide import MAIN_ERRORS, SPECIAL_ERRORS, run_tide

from conftest import REPO
from helpers.runs import planted_detections as _planted_detections


def test_tide_numbers_equal_tidecv_called_directly(demo_root, tmp_path):
    from tidecv import TIDE, datasets

    gt_json = os.path.join(demo_root, "minival.json")
    res_json = _planted_detections(gt_json, str(tmp_path / "dets.json"))
    ours = run_tide(gt_json, res_json, plot_dir=str(tmp_path / "plots"), name="planted")
    for task, mode in (("bbox", TIDE.BOX), ("segm", TIDE.MASK)):
        tide = TIDE()
        run = tide.evaluate(datasets.COCO(gt_json), datasets.COCOResult(res_json), mode=mode, name="direct")
        assert ours[task]["AP50"] == run.ap
        assert ours[task]["main"] == {e: tide.get_main_errors()["direct"][e] for e in MAIN_ERRORS}
        assert ours[task]["special"] == {e: tide.get_special_errors()["direct"][e] for e in SPECIAL_ERRORS}
        assert os.path.isfile(tmp_path / "plots" / f"planted_{task}_{mode}_summary.png")
    # The planted errors show up.
    assert ours["bbox"]["main"]["Loc"] > 0 and ours["bbox"]["main"]["Cls"] > 0 and ours["bbox"]["main"]["Miss"] > 0
    with pytest.raises(FileNotFoundError, match="results file"):
        run_tide(gt_json, str(tmp_path / "nope.json"))


def test_tide_figures_do_not_share_tidecv_scratch_folder(demo_root, tmp_path, monkeypatch):
    """tidecv empties $TIDE_PATH/_tmp before drawing each figure, so two reports plotting at once
    destroyed each other's parts (a crash seen with two test sessions); each call now uses its own."""
    monkeypatch.setenv("TIDE_PATH", str(tmp_path / "shared"))
    other = tmp_path / "shared" / "_tmp" / "someone_elses_part.png"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"x")
    gt_json = os.path.join(demo_root, "minival.json")
    res_json = _planted_detections(gt_json, str(tmp_path / "dets.json"))
    run_tide(gt_json, res_json, tasks=("bbox",), plot_dir=str(tmp_path / "plots"), name="planted")
    assert other.read_bytes() == b"x"
    assert os.path.isfile(tmp_path / "plots" / "planted_bbox_bbox_summary.png")


BENCH = """
benchmark = dict(
    name="tiny",
    output_dir="{out}",
    detection_overrides=["train.max_iter=4", "train.eval_period=2", "dataloader.train.total_batch_size=2",
                         "lr_multiplier.warmup_iters=1", "train.checkpointer.period=0", "train.log_period=1",
                         "dataloader.test.dataset.names=demo_minival"],
    pretrain_overrides=["train.max_iter=4", "lr_multiplier.warmup_iters=1", "dataloader.train.total_batch_size=4",
                        "train.log_period=2", "dataloader.train.dataset.size=64"],
    bootstrap=dict(resamples=50, level=0.95, seed=0),
    profile_steps=2,
    inits=dict(
        random=dict(config="{repo}/configs/demo/bench/random.py"),
        mae=dict(config="{repo}/configs/demo/bench/mae.py",
                 pretrain=[dict(name="mae", config="{repo}/projects/MAE/configs/mae_vit_tiny_demo.py")]),
        beit=dict(config="{repo}/configs/demo/bench/beit.py", pretrain=[
            dict(name="tokenizer", tool="tokenizer", config="{repo}/projects/BEiT/configs/tokenizer_vq_demo.py"),
            dict(name="beit", config="{repo}/projects/BEiT/configs/beit_vit_tiny_demo.py",
                 overrides=["tokenizer.path={{tokenizer}}/tokenizer_final.pth"])]),
    ),
)
"""


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory, demo_root):
    root = tmp_path_factory.mktemp("bench")
    path = root / "tiny.py"
    path.write_text(BENCH.format(out=root / "out", repo=REPO))
    spec = load_benchmark(str(path))
    Runner(spec, progress=False).run()
    return spec


def test_runner_table_equals_the_runs_metrics(tiny_benchmark):
    spec = tiny_benchmark
    results = Runner(spec, progress=False).collect()
    out = write_report(spec, results)
    assert [r.status for r in results] == ["complete"] * 3, [r.problems for r in results]
    headers = out["headers"]
    for r, row in zip(results, out["results"]):
        rows = [json.loads(line) for line in open(os.path.join(r.run_dir, "metrics.json"))]
        final = [x for x in rows if "bbox/AP" in x][-1]
        assert final["iteration"] == 3
        for task, label in (("bbox", "box"), ("segm", "mask")):
            for m in METRICS:
                v = final[f"{task}/{m}"]  # APl is NaN on the demo (no large objects): shown as "-"
                assert row[headers.index(f"{label} {m}")] == ("-" if np.isnan(v) else round(v, 2))
        # Convergence points are the evaluations at 2 and 4 iterations.
        assert [p["iteration"] for p in r.curve] == [2, 4]
        assert r.cost["params_m"] > 0 and r.cost["backbone_gflops"] > 0 and r.cost["inference_s_per_image"] > 0
    # The pre-trained inits started from their exports.
    assert results[1].init_checkpoint.endswith("pretrain/mae_mae/backbone_final.pth")
    assert results[2].init_checkpoint.endswith("pretrain/beit_beit/backbone_final.pth")
    log = open(os.path.join(results[2].run_dir, "log.txt")).read()
    assert "0 missing UNEXPECTEDLY, 0 checkpoint tensors unused" in log


def test_outputs_exist_and_name_every_run_and_tide_equals_tidecv(tiny_benchmark):
    spec = tiny_benchmark
    results = Runner(spec, progress=False).collect()
    out = write_report(spec, results)
    d = spec.output_dir
    for f in ("results.md", "results.csv", "results.json", "convergence.png", "report.md",
              "tide/tide_comparison.png", "tide/tide.md", "tide/tide.json"):
        assert os.path.getsize(os.path.join(d, f)) > 0, f
    report = open(os.path.join(d, "report.md")).read()
    table = open(os.path.join(d, "results.md")).read()
    for name in ("random", "mae", "beit"):
        assert name in report and name in table and name in open(os.path.join(d, "tide/tide.md")).read()
        assert f"configs/demo/bench/{name}.py" in report
    # TIDE per run equals tidecv on the run's own files.
    gt = os.path.join(os.environ["VITDET_BENCH_CACHE"], f"demo_shapes_v{DEMO_VERSION}_seed0_train2000-val250",
                      "minival.json")
    for r in results:
        direct = run_tide(gt, os.path.join(r.run_dir, "inference", "coco_instances_results.json"), name=r.name)
        assert out["tide"][r.name] == direct


def test_collecting_twice_gives_the_same_table(tiny_benchmark):
    spec = tiny_benchmark
    first = write_report(spec, Runner(spec, progress=False).collect())
    csv1 = open(os.path.join(spec.output_dir, "results.csv")).read()
    second = write_report(spec, Runner(spec, progress=False).collect())
    assert first["results"] == second["results"] and first["tide"] == second["tide"]
    assert open(os.path.join(spec.output_dir, "results.csv")).read() == csv1
    # Running again trains nothing: every run is complete, so it is reused.
    before = os.path.getmtime(os.path.join(spec.run_dir("random"), "model_final.pth"))
    Runner(spec, progress=False).run()
    assert os.path.getmtime(os.path.join(spec.run_dir("random"), "model_final.pth")) == before


def test_missing_and_partial_runs_are_reported(tiny_benchmark, tmp_path):
    src = tiny_benchmark.run_dir("random")
    partial = tmp_path / "partial"
    shutil.copytree(src, partial)
    os.remove(partial / "inference" / "coco_instances_results.json")
    lines = open(partial / "metrics.json").read().splitlines()
    (partial / "metrics.json").write_text("\n".join(lines[:2]) + "\n")  # stopped early
    r = collect_run("partial", str(partial))
    assert r.status == "partial"
    assert any("trained 2 of 4 iterations" in p for p in r.problems)
    assert any("coco_instances_results.json missing" in p for p in r.problems)
    truncated = tmp_path / "truncated"
    shutil.copytree(src, truncated)
    (truncated / "metrics.json").write_text("\n".join(lines) + '\n{"iteration": 4, "tot')
    r = collect_run("truncated", str(truncated))
    assert r.status == "partial" and "not valid JSON" in r.problems[0]
    missing = collect_run("missing", str(tmp_path / "never_ran"))
    assert missing.status == "missing" and "no run directory" in missing.problems[0]
    # In the report they are rows with their status, not dropped.
    spec = copy.copy(tiny_benchmark)
    spec.output_dir = str(tmp_path / "report")
    out = write_report(spec, [collect_run("random", src), r, missing], tide=True)
    assert [row[:2] for row in out["results"]] == [["random", "complete"], ["truncated", "partial"],
                                                   ["missing", "missing"]]
    text = open(tmp_path / "report" / "report.md").read()
    assert "`missing` (missing): no run directory" in text and "`truncated` (partial)" in text


def test_tide_report_cli_and_benchmark_commands(tiny_benchmark, tmp_path):
    dirs = [tiny_benchmark.run_dir(n) for n in ("random", "mae")]
    env = dict(os.environ, PYTHONPATH=REPO)
    subprocess.run([sys.executable, os.path.join(REPO, "tools/tide_report.py"), *dirs, "--output", str(tmp_path / "t")],
                   check=True, env=env, capture_output=True)
    data = json.load(open(tmp_path / "t" / "tide.json"))
    assert set(data) == {"random", "mae"} and os.path.isfile(tmp_path / "t" / "tide_comparison.png")
    cached = json.load(open(os.path.join(dirs[1], "tide.json")))["tide"]
    assert data["mae"] == cached
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools/tide_report.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "not a finished run directory" in proc.stderr
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools/benchmark.py"), "--config-file",
                           tiny_benchmark.source_file, "--print-commands", "--num-gpus", "8"],
                          env=env, capture_output=True, text=True, check=True)
    for name in ("random", "mae", "beit"):
        assert f"# {name}:" in proc.stdout
    assert "tools/train_tokenizer.py" in proc.stdout and "--collect-only" in proc.stdout


def test_benchmark_files_load_with_five_inits():
    for f in ("demo.py", "demo_quick.py", "demo_gpu.py", "coco_vit_b.py"):
        spec = load_benchmark(os.path.join(REPO, "configs/benchmark", f))
        assert [i.name for i in spec.inits] == ["random", "supervised", "mocov3", "beit", "mae"]
    quick = load_benchmark(os.path.join(REPO, "configs/benchmark/demo_quick.py"))
    assert "train.max_iter=40" in quick.detection_overrides
    with pytest.raises(ValueError, match="not both"):
        from vitdet_bench.benchmark.runner import load_benchmark as lb

        p = os.path.join(REPO, "configs/benchmark/coco_vit_b.py")
        lb(p, ["+inits.mae.pretrain=[{name: x, config: y}]"])


def test_summary_intervals_verdicts_convergence_and_profile(tiny_benchmark):
    """The per-initialization summary: each AP is the run's final COCO AP, inside its bootstrap
    interval; differences to random are the APs' differences; the pre-training column comes from the
    export's metadata; the report names the verdicts, the convergence points and the profile."""
    spec = tiny_benchmark
    results = Runner(spec, progress=False).collect()
    out = write_report(spec, results)
    by_name = {s.name: s for s in out["summaries"]}
    assert list(by_name) == ["random", "mae", "beit"]
    for r in results:
        s = by_name[r.init]
        for task in ("bbox", "segm"):
            assert s.ap[task] == pytest.approx(r.metrics[task]["AP"], abs=1e-6)  # pycocotools' number
            lo, hi = s.ci[task]
            assert lo <= s.ap[task] + 1e-9 and s.ap[task] - 1e-9 <= hi
        if r.init != "random":
            assert s.delta["bbox"] == pytest.approx(s.ap["bbox"] - by_name["random"].ap["bbox"])
            lo, hi = s.delta_ci["bbox"]
            assert s.verdict("bbox") == ("better" if lo > 0 else "worse" if hi < 0 else "within")
    rows = {row[0]: row for row in out["summary_rows"]}
    mae = next(r for r in results if r.init == "mae")
    assert (mae.pretrain["method"] == "mae" and mae.pretrain["images_seen"] == 4 * 4
            and mae.pretrain["data_images"] == 64)
    assert rows["mae"][out["summary_headers"].index("pre-training seen")] == "16 images, 0.25 ep"
    assert rows["random"][out["summary_headers"].index("pre-training seen")] == "-"
    report = open(os.path.join(spec.output_dir, "report.md")).read()
    assert "## Which initialization is best" in report and "percentile bootstrap" in report
    assert "- **mae** " in report and "- **beit** " in report  # the verdicts in words
    assert "box / mask AP @2" in report and "box / mask AP @4" in report  # the convergence table
    assert "Where training time goes" in report and "| forward" in report  # the profile of the first run
    summary = json.load(open(os.path.join(spec.output_dir, "summary.json")))
    assert ([x["name"] for x in summary["inits"]] == ["random", "mae", "beit"]
            and summary["bootstrap"]["resamples"] == 50)


def test_bootstrap_aggregation_equals_a_direct_computation(tiny_benchmark, tmp_path):
    """summarize_inits against numpy on the per-run resample values it cached: percentiles of each
    init's values and of the paired differences to random."""
    from vitdet_bench.benchmark.uncertainty import summarize_inits

    spec = tiny_benchmark
    results = Runner(spec, progress=False).collect()
    gt = os.path.join(os.environ["VITDET_BENCH_CACHE"], f"demo_shapes_v{DEMO_VERSION}_seed0_train2000-val250",
                      "minival.json")
    summaries = {s.name: s for s in summarize_inits(results, gt, 50, resamples=40, seed=3)}
    cached = {r.init: json.load(open(os.path.join(r.run_dir, "bootstrap.json")))["ap"] for r in results}
    for name, s in summaries.items():
        boxes = np.array(cached[name]["bbox"])
        assert s.ap["bbox"] == pytest.approx(boxes[-1]) and len(boxes) == 41  # 40 resamples + all images
        assert s.ci["bbox"] == pytest.approx(tuple(np.percentile(boxes[:-1], [2.5, 97.5])))
        if name != "random":
            diff = boxes[:-1] - np.array(cached["random"]["bbox"])[:-1]
            assert s.delta_ci["bbox"] == pytest.approx(tuple(np.percentile(diff, [2.5, 97.5])))


BENCH_SEEDS = """
benchmark = dict(
    name="seeds",
    output_dir="{out}",
    seeds=2,
    detection_overrides=["train.max_iter=2", "train.eval_period=1", "dataloader.train.total_batch_size=2",
                         "lr_multiplier.warmup_iters=1", "train.checkpointer.period=0", "train.log_period=1",
                         "dataloader.test.dataset.names=demo_minival"],
    bootstrap=dict(resamples=30, level=0.9, seed=0),
    cost=False,
    tide=False,
    inits=dict(random=dict(config="{repo}/configs/demo/bench/random.py")),
)
"""


def test_seeds_option_repeats_fine_tuning_and_reports_mean_and_std(tmp_path, demo_root):
    path = tmp_path / "seeds.py"
    path.write_text(BENCH_SEEDS.format(out=tmp_path / "out", repo=REPO))
    spec = load_benchmark(str(path))
    assert spec.seeds == 2 and spec.bootstrap["level"] == 0.9
    runner = Runner(spec, progress=False)
    runner.run()
    results = runner.collect()
    assert [(r.name, r.seed, r.status) for r in results] == [("random", 0, "complete"), ("random_seed1", 1, "complete")]
    assert results[1].run_dir.endswith(os.path.join("runs", "random_seed1"))
    from vitdet_bench.config import LazyConfig

    seeds = [LazyConfig.load(os.path.join(r.run_dir, "config.yaml")).train.seed for r in results]
    assert seeds == [0, 1]
    out = write_report(spec, results, tide=False)
    (s,) = out["summaries"]
    finals = [r.metrics["bbox"]["AP"] for r in results]
    assert s.ap["bbox"] == pytest.approx(np.mean(finals)) and s.std["bbox"] == pytest.approx(np.std(finals, ddof=1))
    row = out["summary_rows"][0]
    assert row[1] == "2 of 2 complete" and " ± " in row[2]


def test_device_selection_picks_the_profile_and_reaches_every_run(monkeypatch, tmp_path):
    import torch

    from vitdet_bench.benchmark.runner import default_benchmark_file, resolve_benchmark_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_benchmark_device("auto") == "cuda" and resolve_benchmark_device("cpu") == "cpu"
    assert default_benchmark_file(REPO, "cuda").endswith("configs/benchmark/demo_gpu.py")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_benchmark_device("auto") == "cpu"
    assert default_benchmark_file(REPO, "cpu").endswith("configs/benchmark/demo.py")
    assert default_benchmark_file(REPO, "cuda", quick=True).endswith("configs/benchmark/demo_quick.py")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_benchmark_device("tpu")
    spec = load_benchmark(os.path.join(REPO, "configs/benchmark/demo_gpu.py"))
    runner = Runner(spec, progress=False)
    mae = next(i for i in spec.inits if i.name == "mae")
    assert "train.device=cuda" in runner.detection_overrides(mae)
    assert "train.device=cuda" in runner._step_overrides(mae, mae.pretrain[0])
    assert ("train.seed=2" in runner.detection_overrides(mae, seed=2)
            and runner.spec.run_dir("mae", 2).endswith("mae_seed2"))
    # tools/benchmark.py: --device cpu on the GPU file runs it on the CPU (what --print-commands shows).
    command = [sys.executable, os.path.join(REPO, "tools/benchmark.py"), "--device", "cpu", "--config-file",
               os.path.join(REPO, "configs/benchmark/demo_gpu.py"), "--print-commands", "--seeds", "2"]
    proc = subprocess.run(command + ["--search", "none"], env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
                          text=True, check=True)
    assert "train.device=cpu" in proc.stdout and "train.device=cuda" not in proc.stdout
    assert "runs/mae_seed1" in proc.stdout
    # With its search, the first round's points come first, then the step that selects and runs the rest.
    proc = subprocess.run(command, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, check=True)
    assert "train.device=cuda" not in proc.stdout and "search/mae/grid_lr" in proc.stdout
    assert "--search-step mae" in proc.stdout and "runs/mae_seed1" not in proc.stdout


def test_iterations_to_reach_interpolates_between_evaluations():
    from vitdet_bench.benchmark.uncertainty import iterations_to_reach

    curve = [{"iteration": 100, "bbox/AP": 2.0}, {"iteration": 200, "bbox/AP": 6.0}, {"iteration": 300, "bbox/AP": 7.0}]
    assert iterations_to_reach(curve, 4.0) == pytest.approx(150.0)  # halfway between 2 and 6
    assert iterations_to_reach(curve, 1.0) == pytest.approx(50.0)  # from 0 AP at iteration 0
    assert iterations_to_reach(curve, 7.0) == pytest.approx(300.0)
    assert iterations_to_reach(curve, 7.5) is None
    assert iterations_to_reach([{"iteration": 10, "bbox/AP": float("nan")}], 1.0) is None
