"""One command that checks every CUDA path and measures paper-scale speed on this machine's GPU
(``tools/device_check.py``), with a dry run at tiny sizes for the CPU.

It runs, each as its own process with its own time budget (a failure, a crash or a timeout is
recorded and the next step runs; nothing is shared between steps but the demo data):

1. ``demo-data``: the bundled demo dataset, generated once (cached after);
2. ``cuda-tests``: ``tests/engine/test_cuda.py -m cuda``, the CUDA cases of its checks (AMP fp16 / bf16 steps,
   fused SDPA kernels, inference mode, GPU mask paste, SyncBN over NCCL, compiled backbone), one
   row per test with its skip reason or error line;
3. ``tools/benchmark_detector.py`` on the demo data for ViT-B and ViT-L Mask R-CNN at 1024 px
   (``configs/COCO/mask_rcnn_vit_{b,l}_mae_100ep.py``): training at batch 4, inference at batch 1,
   bf16, ``train.compile`` off and on, with the backbone's FLOP count (:mod:`.flops`);
4. ``torchrun``: ``torchrun --nproc-per-node 1`` training ViT-B for 20 iterations with the config's
   SyncBN, on NCCL.

The dry run is the same sequence at the CPU's scale: the CUDA cases skip with their reason (their
CPU cases run in the ordinary test suite); the demo detector (256 px) stands in for ViT-B / ViT-L, compiled
with ``aot_eager`` (inductor's C++ build alone takes minutes on two cores); torchrun uses Gloo for
2 iterations, where torch's SyncBatchNorm cannot run, so the run uses BatchNorm and the table says so.

The report (``device_check.md`` and ``device_check.json`` in the output folder) holds the device,
torch / CUDA versions, a speed table (s/image, images/s, GB/image per phase, achieved TFLOP/s and
MFU against the GPU's dense bf16 peak) and every check's pass / fail / skip with its error line.
Each step's log is kept beside it (``logs/``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from typing import Any

from .throughput import DEMO_DATA

__all__ = ["DRY_RUN_BUDGET_S", "FULL_BUDGET_S", "Step", "format_device_report", "plan", "run_device_check"]

logger = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIT_B = "configs/COCO/mask_rcnn_vit_b_mae_100ep.py"
VIT_L = "configs/COCO/mask_rcnn_vit_l_mae_100ep.py"
DEMO = "configs/demo/mask_rcnn_vit_tiny.py"
CUDA_TESTS = "tests/engine/test_cuda.py"
BF16 = ["train.amp.enabled=True", "train.amp.dtype=bfloat16", "train.amp.inference=True"]
SYNC_BN = ["model.backbone.norm=SyncBN", "model.roi_heads.box_head.norm=SyncBN",
           "model.roi_heads.mask_head.norm=SyncBN"]

# Time budgets, seconds. Full run: one H100, 8 minutes in all; each step is stopped at its budget
# (or at what is left of the total). The parent's own work (imports, the report) takes the rest.
FULL_BUDGET_S = 480
# Dry run: about 1.5 minutes on two CPU cores; the budgets leave room for a loaded CI machine.
DRY_RUN_BUDGET_S = 310
_MIN_START_S = 5  # a step that would get less than this is skipped

# Benchmark runs: (step, model, config, compile, warm-up, timed steps, timed images, profile steps, budget).
_FULL_RUNS = [
    ("vit-b", "ViT-B", VIT_B, False, 5, 20, 50, 3, 55),
    ("vit-l", "ViT-L", VIT_L, False, 3, 10, 30, 3, 60),
    # The first step and the first image hold inductor's compilation (forward + backward, then the
    # inference graph); the budget is mostly that.
    ("vit-b-compiled", "ViT-B", VIT_B, True, 3, 10, 20, 0, 95),
    ("vit-l-compiled", "ViT-L", VIT_L, True, 2, 5, 10, 0, 90),
]
_DRY_RUNS = [
    ("demo", "demo ViT (dry run)", DEMO, False, 1, 2, 2, 1, 60),
    ("demo-compiled", "demo ViT (dry run)", DEMO, True, 1, 2, 2, 0, 60),
]


@dataclasses.dataclass
class Step:
    """One sub-check: a command run from the repository root with a time budget.

    Args:
        name: the step's row name (``--only`` takes it).
        kind: "setup", "pytest", "benchmark" or "torchrun" (how its result is read).
        argv: the command.
        budget_s: seconds it may run.
        what: one line saying what it runs.
        model, compile, batch: for benchmark / torchrun rows of the speed table.
        result: the JSON (benchmark), JUnit XML (pytest) or run directory (torchrun) it writes.
    """

    name: str
    kind: str
    argv: list[str]
    budget_s: int
    what: str
    model: str = ""
    compile: str = "off"
    batch: int = 0
    result: str = ""


def plan(dry_run: bool, output_dir: str, device: str | None = None, run_root: str | None = None) -> list[Step]:
    """The steps of a full run (one GPU) or of the dry run, in order.

    Args:
        dry_run: tiny sizes (the CPU's scale) instead of the paper's.
        output_dir: where results and logs go.
        device: ``cuda`` / ``cpu`` for the benchmarks (default: CUDA when available).
        run_root: where the torchrun training writes its run (default: a temporary folder).
    """
    py = sys.executable
    steps = [Step("demo-data", "setup", [py, "-c", "from vitdet_bench.data import ensure_demo_dataset; "
                                         "print(ensure_demo_dataset())"], 60 if dry_run else 45,
                  "generate / find the bundled demo dataset")]
    junit = os.path.join(output_dir, "cuda_tests.xml")
    # The checks' CPU cases run in the ordinary test suite; here the CUDA cases (skipped without CUDA).
    steps.append(Step("cuda-tests", "pytest", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", CUDA_TESTS,
                                               "-m", "cuda", f"--junitxml={junit}"], 60 if dry_run else 75,
                      f"pytest {CUDA_TESTS} -m cuda", result=junit))
    runs = [_benchmark_step(r, dry_run, output_dir, device) for r in (_DRY_RUNS if dry_run else _FULL_RUNS)]
    compiled = [s for s in runs if s.compile != "off"]
    steps += [s for s in runs if s.compile == "off"]
    steps.append(_torchrun_step(dry_run, run_root))
    return steps + compiled


def _benchmark_step(run: tuple, dry_run: bool, output_dir: str, device: str | None) -> Step:
    name, model, config, compiled, warmup, iters, images, profile, budget = run
    batch = 2 if dry_run else 4
    out = os.path.join(output_dir, f"bench_{name}.json")
    argv = [sys.executable, "tools/benchmark_detector.py", "--config-file", config, "--batch", str(batch),
            "--warmup", str(warmup), "--iters", str(iters), "--images", str(images), "--flops", "--json", out]
    argv += ["--profile", str(profile)] if profile else []
    argv += ["--device", device] if device else []
    argv += ["dataloader.test.dataset.names=demo_minival"] if dry_run else ["--demo-data"]
    argv += BF16 + [f"train.compile.enabled={compiled}"]
    backend = "aot_eager" if dry_run else "inductor"
    argv += ["train.compile.backend=aot_eager"] if compiled and dry_run else []
    what = (f"benchmark_detector {config}: train batch {batch}, inference batch 1, bf16, "
            f"{iters} steps / {images} images timed after {warmup} warm-up")
    return Step(name, "benchmark", argv, budget, what, model=model, compile=backend if compiled else "off",
                batch=batch, result=out)


def _torchrun_step(dry_run: bool, run_root: str | None) -> Step:
    run_dir = os.path.join(run_root or tempfile.gettempdir(), f"device_check_torchrun_{os.getpid()}")
    iters, batch = (2, 2) if dry_run else (20, 4)
    config = DEMO if dry_run else VIT_B
    data = [] if dry_run else [*DEMO_DATA, "train.init_checkpoint="]
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
            "tools/lazyconfig_train_net.py", "--config-file", config, *data, f"train.max_iter={iters}",
            f"dataloader.train.total_batch_size={batch}", "train.eval_period=-1", "train.checkpointer.period=100000",
            "train.log_period=1", "train.amp.enabled=True", "train.amp.dtype=bfloat16", *SYNC_BN,
            f"train.output_dir={run_dir}"]
    what = f"torchrun --nproc-per-node 1: {config}, {iters} iterations, batch {batch}, bf16, SyncBN"
    return Step("torchrun", "torchrun", argv, 60 if dry_run else 50, what,
                model="demo ViT (dry run)" if dry_run else "ViT-B", batch=batch, result=run_dir)


# --- running a step -------------------------------------------------------------------------------

_ERROR = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception|Interrupt)\b.*|^FAILED .*|^E\s{2,}\S.*")


def error_line(text: str) -> str:
    """The line of a log that says what went wrong: the last ``...Error: ...`` line (torchrun's own
    ``ChildFailedError`` passed over for the worker's), else the last line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if _ERROR.match(ln) and "ChildFailedError" not in ln:
            return ln[:300]
    return lines[-1][:300] if lines else "(no output)"


def _run(step: Step, timeout: float, log_path: str) -> tuple[int | None, float, str]:
    """Run ``step.argv`` from the repository root for at most ``timeout`` s, output into
    ``log_path``. Returns ``(exit code or None when stopped at the budget, seconds, output)``."""
    from ..data.demo import demo_cache_dir

    # One demo-data cache for every step (the test suite's conftest would pick its own otherwise).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "PYTHONUNBUFFERED": "1", "VITDET_BENCH_CACHE": demo_cache_dir()}
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(f"$ {' '.join(step.argv)}\n")
        log.flush()
        # A session of its own, so a timeout stops the step's whole process tree (torchrun's worker too).
        proc = subprocess.Popen(step.argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break
    seconds = time.monotonic() - start
    with open(log_path, encoding="utf-8", errors="replace") as f:
        return code, seconds, f.read()


def _check(name: str, status: str, seconds: float | None, budget: float | None, detail: str) -> dict[str, Any]:
    return {"name": name, "status": status, "seconds": None if seconds is None else round(seconds, 1),
            "budget_s": budget, "detail": detail}


def _read_junit(path: str) -> list[dict[str, Any]]:
    """One check row per test case of a pytest JUnit XML file."""
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"cuda-tests: {case.get('name')}"
        seconds = float(case.get("time") or 0)
        failed = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if failed is not None:
            message = failed.get("message") or error_line(failed.text or "")
            rows.append(_check(name, "fail", seconds, None, message.strip().splitlines()[0][:300] if message else ""))
        elif skipped is not None:
            reason = (skipped.get("message") or "").strip()
            rows.append(_check(name, "skip", seconds, None, re.sub(r"^Skipped: ", "", reason)))
        else:
            rows.append(_check(name, "pass", seconds, None, ""))
    return rows


def _speed_rows(step: Step, report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for phase in ("train", "inference"):
        r = report.get(phase)
        if not r:
            continue
        rows.append({"model": step.model, "compile": step.compile, "phase": phase, "batch": r["batch_size"],
                     "dtype": r["amp"], "s_per_image": r["s_per_image"], "images_per_s": r["images_per_s"],
                     "gb_per_image": r["peak_mem_mb"] / 1024 / r["batch_size"], "tflops": r.get("tflops"),
                     "mfu": r.get("mfu"), "first_call_s": r["first_call_s"], "source": step.name})
    return rows


def _kernel_summary(report: dict[str, Any]) -> str:
    parts = []
    for phase in ("train", "inference"):
        kernels: dict[str, set] = {}
        for k in (report.get(phase) or {}).get("attention_kernels", []):
            kernels.setdefault(k["attention"].split()[0], set()).add(k["kernel"])
        if kernels:
            parts.append(f"{phase}: " + ", ".join(f"{a} {'/'.join(sorted(v))}" for a, v in sorted(kernels.items())))
    return "SDPA " + "; ".join(parts) if parts else "no SDPA calls profiled"


def _read_torchrun(step: Step, dry_run: bool, flops: dict | None, peak: float | None) -> tuple[dict, list[dict]]:
    """The torchrun step's check row and speed row, from its log.txt and metrics.json."""
    from .flops import achieved_tflops, mfu

    log = open(os.path.join(step.result, "log.txt"), encoding="utf-8").read()
    backend = re.search(r"Process group: (\w+) backend", log)
    backend = backend.group(1) if backend else "none (not distributed)"
    reverted = re.search(r"SyncBN -> BatchNorm2d \(device (\w+), (\d+) process\(es\)\)", log)
    norm = (f"SyncBN in the config ran as BatchNorm2d (device {reverted.group(1)}, {reverted.group(2)} process: "
            "torch's SyncBatchNorm needs CUDA and syncs nothing alone; its NCCL path is cuda-tests' SyncBN check)"
            if reverted else "SyncBN")
    records = [json.loads(ln) for ln in open(os.path.join(step.result, "metrics.json"), encoding="utf-8") if ln.strip()]
    timed = [r for r in records if "time" in r]
    done = max((r["iteration"] for r in records), default=-1) + 1
    expected = int(next(a.split("=")[1] for a in step.argv if a.startswith("train.max_iter=")))
    problems = []
    if done != expected:
        problems.append(f"{done} of {expected} iterations in metrics.json")
    if not dry_run and backend != "nccl":
        problems.append(f"backend {backend}, not nccl")
    if not os.path.isfile(os.path.join(step.result, "model_final.pth")):
        problems.append("no model_final.pth")
    detail = f"{backend} backend, {done} iterations, {norm}"
    check = _check("torchrun", "fail" if problems else "pass", None, step.budget_s,
                   "; ".join(problems + [detail]) if problems else detail)
    rows = []
    if timed:
        s_iter = timed[-1]["time"]  # the trainer's running median over the last 20 iterations
        s_img = s_iter / step.batch
        tflops = achieved_tflops(flops["gflops_per_image"], s_img, True) if flops else None
        rows.append({"model": step.model, "compile": "off", "phase": "train (torchrun loop)", "batch": step.batch,
                     "dtype": "bfloat16", "s_per_image": s_img, "images_per_s": 1 / s_img,
                     "gb_per_image": max(r.get("max_mem_mb", 0) for r in records) / 1024 / step.batch,
                     "tflops": tflops, "mfu": mfu(tflops, peak), "first_call_s": None, "source": "torchrun"})
    return check, rows


def run_device_check(output_dir: str, dry_run: bool = False, device: str | None = None,
                     only: list[str] | None = None) -> dict[str, Any]:
    """Run the steps of :func:`plan` within the total budget; write ``device_check.json`` and
    ``device_check.md`` into ``output_dir``.

    Args:
        output_dir: the report's folder (created); step logs go to ``logs/`` in it.
        dry_run: tiny sizes (see the module docstring).
        device: ``cuda`` / ``cpu`` for the benchmarks (default: CUDA when available).
        only: run only the steps with these names.

    Returns:
        the report: ``environment``, ``checks`` (name, status, seconds, budget_s, detail),
        ``speed`` rows, ``kernels`` and ``top_ops`` per benchmark, ``ok``, ``wall_s``.
    """
    import torch

    from .throughput import environment

    started = time.monotonic()
    total = DRY_RUN_BUDGET_S if dry_run else FULL_BUDGET_S
    deadline = started + total
    os.makedirs(os.path.join(output_dir, "logs"), exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    env = environment(dev)
    peak = env.get("bf16_peak_tflops")
    steps = plan(dry_run, os.path.abspath(output_dir), device)
    unknown = set(only or []) - {s.name for s in steps}
    if unknown:
        raise ValueError(f"--only: unknown steps {sorted(unknown)} (steps: {', '.join(s.name for s in steps)})")
    report: dict[str, Any] = {"dry_run": dry_run, "budget_s": total, "environment": env, "checks": [], "speed": [],
                              "kernels": {}, "top_ops": {}, "plan": [dataclasses.asdict(s) for s in steps]}
    flops_by_model: dict[str, dict] = {}
    for step in steps:
        if only and step.name not in only:
            continue
        left = deadline - time.monotonic()
        if left < _MIN_START_S:  # a check that did not run is a failure of a run meant to report everything
            report["checks"].append(_check(step.name, "fail", None, step.budget_s,
                                           f"not started: the {total}-s total budget was spent"))
            continue
        timeout = min(step.budget_s, left)
        logger.info("device check: %s (budget %d s): %s", step.name, timeout, step.what)
        code, seconds, output = _run(step, timeout, os.path.join(output_dir, "logs", f"{step.name}.log"))
        limit = (f"its {step.budget_s}-s budget" if timeout == step.budget_s
                 else f"the total budget's last {timeout:.0f} s")
        failure = (f"stopped at {limit} after {seconds:.0f} s; last line: {error_line(output)}" if code is None
                   else f"exit code {code}: {error_line(output)}" if code != 0 else None)
        try:
            rows = _read_step(step, code, seconds, failure, output, dry_run, flops_by_model, peak, report)
        except (OSError, ValueError, KeyError, ET.ParseError) as e:
            rows = [_check(step.name, "fail", seconds, step.budget_s,
                           failure or f"its results could not be read: {type(e).__name__}: {e}")]
        finally:
            if step.kind == "torchrun":
                shutil.rmtree(step.result, ignore_errors=True)  # its checkpoint is not a result
        report["checks"] += rows
        logger.info("device check: %s %s in %.0f s", step.name, rows[0]["status"], seconds)
    report["wall_s"] = round(time.monotonic() - started, 1)
    report["ok"] = not any(c["status"] == "fail" for c in report["checks"])
    with open(os.path.join(output_dir, "device_check.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(output_dir, "device_check.md"), "w", encoding="utf-8") as f:
        f.write(format_device_report(report) + "\n")
    return report


def _read_step(step: Step, code: int | None, seconds: float, failure: str | None, output: str, dry_run: bool,
               flops_by_model: dict[str, dict], peak: float | None, report: dict[str, Any]) -> list[dict]:
    """The check rows of one finished step (and its speed rows, kernels and top ops into ``report``)."""
    if step.kind == "pytest":
        cases = _read_junit(step.result) if os.path.isfile(step.result) and code is not None else []
        counts = {s: sum(c["status"] == s for c in cases) for s in ("pass", "fail", "skip")}
        summary = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
        # pytest exits 1 when a test failed (its row says which); other codes mean the run itself broke.
        broken = failure if failure and (code != 1 or not counts["fail"]) else None
        status = ("fail" if broken or counts["fail"] or not cases
                  else "skip" if counts["skip"] == len(cases) else "pass")
        detail = f"{broken}; {summary}" if broken else summary
        return [_check(step.name, status, seconds, step.budget_s, detail)] + cases
    if failure:
        return [_check(step.name, "fail", seconds, step.budget_s, failure)]
    if step.kind == "setup":
        return [_check(step.name, "pass", seconds, step.budget_s, output.strip().splitlines()[-1])]
    if step.kind == "benchmark":
        result = json.load(open(step.result, encoding="utf-8"))
        if result.get("flops"):
            flops_by_model.setdefault(step.model, result["flops"])
        report["speed"] += _speed_rows(step, result)
        report["kernels"][step.name] = {p: result[p]["attention_kernels"] for p in ("train", "inference")}
        tops = {p: result[p]["top_ops"][:10] for p in ("train", "inference") if result[p].get("top_ops")}
        if tops:
            report["top_ops"][step.name] = tops
        detail = _kernel_summary(result)
        if step.compile != "off":
            detail += (f"; compilation (first call minus median) train {result['train']['compile_s_estimate']:.1f} s, "
                       f"inference {result['inference']['compile_s_estimate']:.1f} s")
        return [_check(step.name, "pass", seconds, step.budget_s, detail)]
    check, rows = _read_torchrun(step, dry_run, flops_by_model.get(step.model), peak)
    check["seconds"] = round(seconds, 1)
    report["speed"] += rows
    return [check]


# --- the report -----------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_device_report(report: dict[str, Any]) -> str:
    """The report as Markdown: header, speed table, checks table, SDPA kernels, top operators."""
    from tabulate import tabulate

    env = report["environment"]
    gpu = env.get("gpu")
    where = (f"{gpu} ({env['device']}, {env.get('gpu_memory_gb')} GB)" if gpu
             else f"{env.get('cpu', 'CPU')} ({env['device']}, {env['threads']} threads)")
    peak = env.get("bf16_peak_tflops")
    peak_text = (f"dense bf16 peak {peak:.0f} TFLOP/s ({env.get('gpu_card')})" if peak
                 else "no known bf16 peak for this device: MFU '-'")
    counts = {s: sum(c["status"] == s for c in report["checks"]) for s in ("pass", "fail", "skip")}
    lines = [f"# Device check{' (dry run: tiny sizes)' if report['dry_run'] else ''}", "",
             f"- device: {where}",
             f"- torch {env['torch']}, torchvision {env['torchvision']}, CUDA {env['cuda']}"
             + (f", cuDNN {env['cudnn']}" if env.get("cudnn") else ""),
             f"- {peak_text}",
             f"- wall {report['wall_s']:.0f} s of the {report['budget_s']} s budget; {counts['pass']} passed, "
             f"{counts['fail']} failed, {counts['skip']} skipped: **{'OK' if report['ok'] else 'FAILED'}**", "",
             "## Speed", ""]
    mem = ("CUDA max_memory_allocated" if env["device"].startswith("cuda")
           else "max-RSS growth (0: an earlier phase peaked higher)")
    rows = [[r["model"], r["compile"], r["phase"], r["batch"], r["dtype"], _fmt(r["s_per_image"], ".4f"),
             _fmt(r["images_per_s"], ".1f"), _fmt(r["gb_per_image"], ".2f"), _fmt(r["tflops"], ".3g"),
             "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%", _fmt(r["first_call_s"], ".1f")]
            for r in report["speed"]]
    lines.append(tabulate(rows, headers=["model", "torch.compile", "phase", "batch", "dtype", "s / image", "images / s",
                                         "GB / image", "TFLOP/s", "MFU", "first call s"], tablefmt="github")
                 if rows else "(no speed measured)")
    lines += ["", f"GB / image: {mem}, per image of the batch. TFLOP/s: 2 x the fvcore count of model.backbone "
              "(ViT, pyramid, FPN; multiply-adds) per image, x 3 in training (forward + backward), per measured "
              "second; the RPN and RoI heads are not counted, so it and MFU are lower bounds. The torchrun row is "
              "the trainer's median iteration (data loading included) and its max_mem (on the CPU: peak RSS).", "",
              "## Checks", ""]
    checks = [[c["name"], c["status"], "-" if c["seconds"] is None else f"{c['seconds']:.0f}",
               "-" if c["budget_s"] is None else c["budget_s"], c["detail"].replace("|", "\\|")]
              for c in report["checks"]]
    lines.append(tabulate(checks, headers=["check", "status", "s", "budget s", "detail / error"], tablefmt="github"))
    for name, phases in report["kernels"].items():
        kernel_rows = [[p, k["attention"], k["tokens"], k["pass"], k["kernel"], k["calls"]]
                       for p, ks in phases.items() for k in ks]
        if kernel_rows:
            lines += ["", f"## SDPA kernels: {name}", "",
                      tabulate(kernel_rows, headers=["phase", "attention", "tokens", "pass", "kernel", "calls"],
                               tablefmt="github")]
    for name, phases in report["top_ops"].items():
        for phase, ops in phases.items():
            lines += ["", f"## Top operators: {name}, {phase} (self time per step / image)", "",
                      tabulate([[o["op"], f"{o['self_ms_per_call']:.3f}", f"{o['percent']:.1f}"] for o in ops],
                               headers=["op", "self ms", "%"], tablefmt="github")]
    return "\n".join(lines)
