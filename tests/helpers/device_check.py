"""``tools/device_check.py``'s dry run on the CPU, run once per pytest session and argument list
(``tests/benchmark/test_device_check.py`` and ``tests/test_readme.py`` both check it), and what it
must have written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from vitdet_bench.benchmark.device_check import DRY_RUN_BUDGET_S

from . import REPO

__all__ = ["check_dry_run_report", "collected", "run_dry_run"]

_DRY_RUNS: dict[tuple[str, ...], tuple[subprocess.CompletedProcess, str]] = {}


def run_dry_run(extra: list[str], root) -> tuple[subprocess.CompletedProcess, str]:
    """``python tools/device_check.py --dry-run [extra]`` into a folder under ``root``, once per
    pytest session and argument list (tests/test_readme.py runs the README's command through it)."""
    key = tuple(extra)
    if key not in _DRY_RUNS:
        out = os.path.join(str(root), "device_check_dry_run")
        environ = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "device_check.py"), "--dry-run", *extra,
                               "--output", out], cwd=REPO, env=environ, capture_output=True, text=True, timeout=600)
        _DRY_RUNS[key] = (proc, out)
    return _DRY_RUNS[key]


def collected(*marker: str) -> list[str]:
    """The test ids of tests/engine/test_cuda.py (with ``-m MARKER``: those marked)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                           "tests/engine/test_cuda.py", *(["-m", marker[0]] if marker else [])], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=300)
    return [ln.split("::", 1)[1] for ln in proc.stdout.splitlines() if ln.startswith("tests/engine/test_cuda.py::")]


def check_dry_run_report(proc: subprocess.CompletedProcess, out: str) -> None:
    """What a dry run on this machine must have written (tests/test_readme.py uses it too)."""
    tail = f"\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, tail
    report = json.load(open(os.path.join(out, "device_check.json")))
    markdown = open(os.path.join(out, "device_check.md")).read()
    assert report["dry_run"] and report["ok"] and 0 < report["wall_s"] <= DRY_RUN_BUDGET_S
    assert report["environment"]["torch"] == torch.__version__
    checks = {c["name"]: c for c in report["checks"]}
    # Every step, and every CUDA check, has a row; without CUDA those skip, saying why.
    steps = [s["name"] for s in report["plan"]]
    assert steps == ["demo-data", "cuda-tests", "demo", "torchrun", "demo-compiled"]
    cuda_tests = collected("cuda")
    assert len(cuda_tests) >= 11 and len(collected()) > len(cuda_tests)  # the CPU cases run in the suite
    assert set(checks) == set(steps) | {f"cuda-tests: {t}" for t in cuda_tests}, sorted(checks)
    skipping = not torch.cuda.is_available()
    for name, c in checks.items():
        if name.startswith("cuda-tests") and skipping:
            assert c["status"] == "skip", c
            if name != "cuda-tests":
                assert c["detail"].startswith("needs a CUDA device: none here (torch "), c
        else:
            assert c["status"] == "pass", c
        assert f"| {name} " in markdown
        if name in steps:
            assert 0 < c["seconds"] <= c["budget_s"], c
    if skipping:
        assert checks["cuda-tests"]["detail"] == f"0 passed, 0 failed, {len(cuda_tests)} skipped"
    assert checks["torchrun"]["detail"].startswith(
        "gloo backend, 2 iterations, SyncBN in the config ran as BatchNorm2d (device cpu")
    assert "compilation (first call minus median)" in checks["demo-compiled"]["detail"]
    # Speed: both phases of both benchmark runs and the torchrun loop, with positive numbers.
    rows = {(r["compile"], r["phase"]): r for r in report["speed"]}
    assert set(rows) == {("off", "train"), ("off", "inference"), ("aot_eager", "train"), ("aot_eager", "inference"),
                         ("off", "train (torchrun loop)")}
    for key, r in rows.items():
        assert r["s_per_image"] > 0 and r["images_per_s"] > 0 and r["tflops"] > 0, (key, r)
        assert r["images_per_s"] == pytest.approx(1 / r["s_per_image"]) and r["dtype"] == "bfloat16"
        assert r["gb_per_image"] >= 0 and (r["first_call_s"] is None or r["first_call_s"] > 0), (key, r)
        assert r["mfu"] is None  # no bf16 peak for a CPU
    assert rows[("off", "train (torchrun loop)")]["gb_per_image"] > 0
    assert rows[("off", "train")]["batch"] == 2 and rows[("off", "inference")]["batch"] == 1
    for name in ("demo", "demo-compiled"):
        assert os.path.isfile(os.path.join(out, f"bench_{name}.json"))
        assert {k["attention"].split()[0] for k in report["kernels"][name]["train"]} == {"window", "global"}
    assert report["top_ops"]["demo"]["train"] and "## Top operators: demo, train" in markdown
    for text in ("# Device check (dry run: tiny sizes)", f"torch {torch.__version__}", "no known bf16 peak",
                 "| demo ViT (dry run) | aot_eager ", "| train (torchrun loop) ", "TFLOP/s", "MFU", "**OK**"):
        assert text in markdown, text
    assert os.path.isfile(os.path.join(out, "logs", "torchrun.log"))
    assert "# Device check" in proc.stdout and "device_check.json" in proc.stdout
