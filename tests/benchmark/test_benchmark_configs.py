"""Every benchmark file under configs/benchmark/ runs end to end in a tiny form: each demo profile
(GPU ones forced to the CPU) pre-trains every chain for 2 iterations on a 64-image pool, probes
every encoder, runs a one-point search and fine-tunes every initialization from its real export;
each paper-scale file plans its jobs and every job's config loads with its overrides. So two
changes that each pass their own tests cannot break a row of a benchmark between them."""

import glob
import os

import pytest

from vitdet_bench.benchmark import Runner, load_benchmark, write_report
from vitdet_bench.config import LazyConfig, validate_config

from conftest import REPO

FILES = sorted(glob.glob(os.path.join(REPO, "configs", "benchmark", "*.py")))
# End to end: the demo profiles, except demo_quick.py, which is demo.py's pipeline with shorter
# overrides (its jobs are planned and their configs loaded with the paper-scale files below).
DEMO = [f for f in FILES if os.path.basename(f).startswith("demo") and os.path.basename(f) != "demo_quick.py"]
PAPER = [f for f in FILES if f not in DEMO]

TINY_PRETRAIN = ["train.max_iter=2", "lr_multiplier.warmup_iters=1", "dataloader.train.total_batch_size=4",
                 "train.log_period=1", "dataloader.train.dataset.size=64", "dataloader.train.num_workers=0",
                 "train.checkpointer.period=0"]
TINY_DETECTION = ["train.max_iter=2", "train.eval_period=0", "dataloader.train.total_batch_size=2",
                  "lr_multiplier.warmup_iters=1", "train.checkpointer.period=0", "train.log_period=1",
                  "dataloader.test.dataset.names=demo_minival", "train.eval_subset=None",
                  "dataloader.train.num_workers=0", "dataloader.test.num_workers=0"]


def test_every_benchmark_file_is_covered():
    assert {os.path.basename(f) for f in FILES} >= {"demo.py", "demo_quick.py", "demo_gpu.py", "demo_seeds.py",
                                                   "coco_vit_b.py", "coco_vit_l.py", "coco_seeds.py", "coco_vit_t.py"}


@pytest.mark.slow  # about a minute per demo profile on two cores: every chain pre-trained and fine-tuned
@pytest.mark.parametrize("path", DEMO, ids=os.path.basename)
def test_demo_profiles_run_end_to_end_from_every_export(path, tmp_path, demo_root):
    spec = load_benchmark(path, [f"output_dir={tmp_path / 'out'}", "device=cpu"])
    for init in spec.inits:  # after each step's own overrides (the GPU profile sets its steps' lengths)
        for step in init.pretrain:
            step.overrides = list(step.overrides) + TINY_PRETRAIN
    spec.detection_overrides += TINY_DETECTION
    spec.search.lr = {"center": spec.search.lr["center"], "factors": [1.0]}
    spec.search.weight_decay = {"center": spec.search.weight_decay["center"], "factors": [1.0]}
    spec.search.drop_path = spec.search.drop_path[:1]
    spec.search.grid_schedule = type(spec.search.grid_schedule)(iters=1)
    spec.search.drop_path_schedule = type(spec.search.grid_schedule)(iters=1)
    spec.search.grid_schedule_random = spec.search.drop_path_schedule_random = None
    spec.search.select_split = "demo_minival"
    if os.path.basename(path) != "demo.py":  # one search end to end is enough (tests/benchmark/test_search*.py)
        spec.search.mode = "none"
    if spec.probe is not None:
        spec.probe.train, spec.probe.test = 40, 20
    spec.cost = spec.tide = False
    runner = Runner(spec, progress=False)
    runner.run()
    results = runner.collect()
    assert {r.name: r.status for r in results} == {i.name: "complete" for i in spec.inits}, \
        {r.name: r.problems for r in results}
    for init in spec.inits:
        ckpt = runner.checkpoint_for(init)
        log = open(os.path.join(spec.run_dir(init.name), "log.txt")).read()
        if ckpt:  # fine-tuned from the chain's own export, loaded without a missing tensor
            assert ckpt in log and os.path.isfile(ckpt), init.name
    out = write_report(spec, results, tide=False, extras=runner.collect_extras())
    assert len(out["summary_rows"]) == len(spec.inits)
    if spec.probe is not None:
        probed = [row for row in out["summary_rows"] if row[7] != "-" and "not a plain ViT" not in row[7]]
        assert len(probed) >= 5, [row[7] for row in out["summary_rows"]]


@pytest.mark.parametrize("path", PAPER, ids=os.path.basename)
def test_paper_scale_files_plan_every_job_and_every_job_config_loads(path, tmp_path):
    """--print-commands' jobs (the first search round, its selection step, or the finals) for every
    initialization, and the config of each training job loads with its overrides and validates."""
    import json

    opts = [f"output_dir={tmp_path / 'out'}"]
    spec = load_benchmark(path, opts)
    if spec.search.reuse and "summary" in spec.search.reuse:  # ViT-L reads a finished ViT-B benchmark's choice
        summary = tmp_path / "vit_b_summary.json"
        summary.write_text(json.dumps({"inits": [{"name": i.name, "search": {"chosen": {
            "lr": 1e-4, "weight_decay": 0.1, "drop_path": 0.1}}} for i in spec.inits]}))
        spec.search.reuse = {"summary": str(summary)}
    runner = Runner(spec, progress=False)
    jobs = runner.jobs(8)
    assert {j.name.split("/")[0] for j in jobs} == {i.name for i in spec.inits}
    for job in jobs:
        if job.tool == "benchmark":
            assert "--search-step" in job.argv
            continue
        config = job.argv[job.argv.index("--config-file") + 1]
        overrides = [a for a in job.argv if "=" in a and not a.startswith("--")]
        cfg = LazyConfig.apply_overrides(LazyConfig.load(os.path.join(REPO, config) if not os.path.isabs(config)
                                                         else config), overrides)
        validate_config(cfg)
