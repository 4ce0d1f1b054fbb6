"""tools/device_check.py: the plan and its time budgets, the runner's failure handling (a failing or
timed-out step is recorded and the next one runs), the report, and the whole dry run on the CPU
(every row present, numbers positive, the CUDA-only checks skipped with their reason)."""

from __future__ import annotations

import json
import os
import re
import sys

import pytest
import torch

from vitdet_bench.benchmark import device_check
from vitdet_bench.benchmark.device_check import (
    DRY_RUN_BUDGET_S,
    FULL_BUDGET_S,
    SYNC_BN,
    Step,
    error_line,
    format_device_report,
    plan,
    run_device_check,
)

from helpers import REPO
from helpers.device_check import check_dry_run_report, run_dry_run


@pytest.mark.slow  # the whole dry run: about 1.5 minutes on two CPU cores
def test_dry_run_writes_every_row(tmp_path_factory, demo_root):
    proc, out = run_dry_run([], tmp_path_factory.mktemp("device_check"))
    check_dry_run_report(proc, out)


def test_full_plan_keeps_its_budget_and_runs_the_issue_s_commands():
    steps = plan(False, "/tmp/out")
    assert [s.name for s in steps] == ["demo-data", "cuda-tests", "vit-b", "vit-l", "torchrun", "vit-b-compiled",
                                       "vit-l-compiled"]
    # Every step has its budget; together they leave the parent 10 s of the 8 minutes.
    assert all(s.budget_s > 0 for s in steps) and sum(s.budget_s for s in steps) <= FULL_BUDGET_S - 10
    assert FULL_BUDGET_S <= 8 * 60
    assert steps[1].argv[-3:-1] == ["-m", "cuda"] and steps[1].result == "/tmp/out/cuda_tests.xml"
    assert steps[1].argv[3:] == ["-q", "-p", "no:cacheprovider", "tests/engine/test_cuda.py", "-m", "cuda",
                                 "--junitxml=/tmp/out/cuda_tests.xml"]
    for s in steps[2:4] + steps[5:]:
        a = s.argv
        assert a[1] == "tools/benchmark_detector.py" and "--demo-data" in a and "--flops" in a
        assert a[a.index("--batch") + 1] == "4" and a[a.index("--config-file") + 1] == (
            "configs/COCO/mask_rcnn_vit_b_mae_100ep.py" if s.model == "ViT-B" else
            "configs/COCO/mask_rcnn_vit_l_mae_100ep.py")
        assert {"train.amp.enabled=True", "train.amp.dtype=bfloat16", "train.amp.inference=True"} <= set(a)
        assert f"train.compile.enabled={s.compile != 'off'}" in a and not any("backend" in w for w in a)
    torchrun = steps[4]
    assert torchrun.argv[1:7] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                                  "tools/lazyconfig_train_net.py"]
    assert {"train.max_iter=20", "dataloader.train.total_batch_size=4", "train.init_checkpoint=", *SYNC_BN} <= set(
        torchrun.argv)
    dry = plan(True, "/tmp/out")
    assert sum(s.budget_s for s in dry) <= DRY_RUN_BUDGET_S - 10
    assert dry[1].argv == steps[1].argv  # the same CUDA tests (skipped without CUDA)
    assert "train.compile.backend=aot_eager" in dry[-1].argv and "train.max_iter=2" in dry[3].argv


def test_error_line_finds_the_cause():
    log = "Traceback (most recent call last):\n  File x\nRuntimeError: CUDA error: out of memory\n" \
          "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n====\nsome footer\n"
    assert error_line(log) == "RuntimeError: CUDA error: out of memory"
    oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert error_line(f"{oom}\n") == oom
    assert error_line("just\nthe last line\n") == "the last line" and error_line("") == "(no output)"


def test_a_failing_or_slow_step_is_recorded_and_the_next_runs(tmp_path, monkeypatch):
    """Each failure is a row with its error line; a step past its budget is stopped (its process
    group killed); the run goes on, and the report says it failed."""
    py = sys.executable
    steps = [Step("boom", "setup", [py, "-c", "raise ValueError('bad input: x.json')"], 30, "fails"),
             Step("slow", "setup", [py, "-c", "import time; time.sleep(60)"], 2, "outlives its budget"),
             Step("fine", "setup", [py, "-c", "print('done')"], 30, "passes")]
    monkeypatch.setattr(device_check, "plan", lambda *a, **k: steps)
    report = run_device_check(str(tmp_path), dry_run=True, device="cpu")
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["boom"] == {"name": "boom", "status": "fail", "seconds": checks["boom"]["seconds"], "budget_s": 30,
                              "detail": "exit code 1: ValueError: bad input: x.json"}
    assert checks["slow"]["status"] == "fail" and checks["slow"]["detail"].startswith("stopped at its 2-s budget after")
    assert checks["slow"]["seconds"] < 20
    assert checks["fine"] == {"name": "fine", "status": "pass", "seconds": checks["fine"]["seconds"], "budget_s": 30,
                              "detail": "done"}
    assert not report["ok"]
    written = json.load(open(tmp_path / "device_check.json"))
    assert written["checks"] == report["checks"] and "**FAILED**" in (tmp_path / "device_check.md").read_text()
    with pytest.raises(ValueError, match=r"--only: unknown steps \['nope'\]"):
        run_device_check(str(tmp_path), dry_run=True, device="cpu", only=["nope"])
    only = run_device_check(str(tmp_path), dry_run=True, device="cpu", only=["fine"])
    assert [c["name"] for c in only["checks"]] == ["fine"] and only["ok"]


def test_the_total_budget_stops_a_step_and_fails_the_ones_it_leaves_out(tmp_path, monkeypatch):
    py = sys.executable
    steps = [Step("slow", "setup", [py, "-c", "import time; time.sleep(60)"], 30, "outlives the total"),
             Step("late", "setup", [py, "-c", "print('never')"], 30, "no time left")]
    monkeypatch.setattr(device_check, "plan", lambda *a, **k: steps)
    monkeypatch.setattr(device_check, "DRY_RUN_BUDGET_S", 7)
    report = run_device_check(str(tmp_path), dry_run=True, device="cpu")
    slow, late = report["checks"]
    assert slow["status"] == "fail" and re.match(r"stopped at the total budget's last [67] s after", slow["detail"])
    assert late == {"name": "late", "status": "fail", "seconds": None, "budget_s": 30,
                    "detail": "not started: the 7-s total budget was spent"}
    assert not report["ok"]


def test_report_states_the_peak_and_mfu_of_a_known_gpu():
    env = {"torch": "2.11.0", "torchvision": "0.26.0", "cuda": "13.0", "device": "cuda", "threads": 16,
           "gpu": "NVIDIA H100 80GB HBM3", "gpu_memory_gb": 79.2, "cudnn": 91000, "gpu_card": "H100 SXM",
           "bf16_peak_tflops": 989.0}
    row = {"model": "ViT-B", "compile": "off", "phase": "train", "batch": 4, "dtype": "bfloat16", "s_per_image": 0.1,
           "images_per_s": 10.0, "gb_per_image": 7.8, "tflops": 98.9, "mfu": 0.1, "first_call_s": 2.0,
           "source": "vit-b"}
    report = {"dry_run": False, "budget_s": 480, "wall_s": 400.0, "ok": False, "environment": env, "speed": [row],
              "checks": [{"name": "vit-l-compiled", "status": "fail", "seconds": 90.0, "budget_s": 90,
                          "detail": "stopped at its 90-s budget after 90 s; last line: x"}], "kernels": {},
              "top_ops": {}}
    text = format_device_report(report)
    assert "NVIDIA H100 80GB HBM3 (cuda, 79.2 GB)" in text and "dense bf16 peak 989 TFLOP/s (H100 SXM)" in text
    assert "| ViT-B   | off             | train   |       4 | bfloat16 |         0.1 |" in text
    assert "| 10.0%" in text and "98.9" in text and "CUDA max_memory_allocated" in text
    assert "| vit-l-compiled | fail     |  90 |         90 | stopped at its 90-s budget" in text
    assert "**FAILED**" in text


def test_tool_refuses_the_full_check_without_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: the full check would run")
    import importlib.util

    spec = importlib.util.spec_from_file_location("device_check_tool", os.path.join(REPO, "tools", "device_check.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit):
        tool.main(["--output", "/tmp/unused"])
    assert "the full check needs a CUDA device" in capsys.readouterr().err
    assert tool.main(["--print-plan"]) == 0
    out = capsys.readouterr().out
    assert "vit-l-compiled" in out and "total budget 480 s; steps 470 s" in out
