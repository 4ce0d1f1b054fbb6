"""Training and inference speed of any detection config on the current device
(``tools/benchmark_detector.py``).

Protocol, as the ViTDet paper and Detectron2 time their models:

* training: the config's own step (:class:`~vitdet_bench.engine.SimpleTrainer`: its AMP dtype and
  GradScaler, gradient clipping, fused optimizer) on batches loaded beforehand, so the data
  loader is timed apart; ``warmup`` steps are excluded; s/iteration is the median of the timed
  steps; peak memory is ``max_memory_allocated`` over the timed steps;
* inference: one image per forward pass (the paper's batch 1), pre-processing to pasted masks,
  under ``torch.inference_mode`` and the config's inference autocast
  (:func:`~vitdet_bench.engine.speed.inference_amp_dtype`), COCO conversion excluded;
* every timed call is bracketed by ``torch.cuda.synchronize`` (:mod:`vitdet_bench.utils.timing`);
* the first call of each phase is reported on its own: with ``train.compile.enabled`` it holds
  the compilation, estimated as first call minus the median step.

It also reports which SDPA kernel served each attention call (window / global, forward and
backward) from the profiler, optionally the profiler's top operators, and optionally (``flops``) the
project's FLOP count of ``model.backbone`` (:mod:`.flops`: ViT, pyramid and FPN; the RPN and RoI
heads are not counted) with the achieved TFLOP/s and MFU of each phase, a lower bound for the
whole detector.
"""

from __future__ import annotations

import itertools
import logging
import platform
import statistics
from typing import Any, Callable

import torch
import torch.nn as nn
from omegaconf import DictConfig

from ..config import instantiate
from ..engine.defaults import build_model, resolve_num_classes
from ..engine.speed import inference_amp_dtype, inference_context
from ..engine.train_loop import AMP_DTYPES, SimpleTrainer
from ..utils.events import EventStorage
from ..utils.timing import peak_memory_mb, reset_peak_memory, synchronize, time_steps
from .flops import achieved_tflops, bf16_peak_tflops, count_flops, mfu

__all__ = ["DEMO_DATA", "SDPA_KERNELS", "backbone_flops", "benchmark_detector", "environment", "format_speed_report",
           "sdpa_kernels", "top_ops"]

logger = logging.getLogger(__name__)

# Overrides that put the bundled demo dataset in place of a config's COCO splits (model.num_classes
# then follows its 4 classes): tools/benchmark_detector.py --demo-data.
DEMO_DATA = ["dataloader.train.dataset.names=demo_train", "dataloader.test.dataset.names=demo_val",
             "model.num_classes=None"]

# The profiler names of SDPA's implementations (forward and backward) -> what the report calls them.
SDPA_KERNELS = {
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_flash_attention_backward": "flash",
    "aten::_scaled_dot_product_efficient_attention": "memory-efficient",
    "aten::_scaled_dot_product_efficient_attention_backward": "memory-efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cuDNN",
    "aten::_scaled_dot_product_cudnn_attention_backward": "cuDNN",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash (CPU)",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward": "flash (CPU)",
    "aten::_scaled_dot_product_fused_attention_overrideable": "fused (other backend)",
    "aten::_scaled_dot_product_attention_math": "math",
}


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and hardware the numbers belong to."""
    import torchvision

    env = {"torch": torch.__version__, "torchvision": torchvision.__version__, "cuda": torch.version.cuda,
           "device": str(device), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                   cudnn=torch.backends.cudnn.version(), tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                   tf32_cudnn=torch.backends.cudnn.allow_tf32)
        env["gpu_card"], env["bf16_peak_tflops"] = bf16_peak_tflops(props.name)
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def _attention_labels(model: nn.Module, image_size: int | None) -> dict[int, str]:
    """Token count -> "window" / "global" for the ViT inside ``model`` at ``image_size``."""
    from ..modeling.backbone.vit import ViT

    vit = next((m for m in model.modules() if isinstance(m, ViT)), None)
    if vit is None or not image_size:
        return {}
    labels = {(image_size // vit.patch_size) ** 2: "global"}
    sizes = {blk.window_size for blk in vit.blocks if blk.window_size > 0}
    labels.update({s * s: f"window {s}x{s}" for s in sizes})
    return labels


def sdpa_kernels(fn: Callable[[], Any], labels: dict[int, str] | None = None) -> list[dict]:
    """Which SDPA implementation served the attention calls of ``fn()`` (run once, profiled).

    Returns:
        ``[{"attention", "tokens", "kernel", "pass", "calls"}]`` with ``pass`` "forward" or
        "backward" and ``attention`` from ``labels`` (token count -> name); the math kernel's
        backward is autograd's and is not listed.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, record_shapes=True) as prof:
        fn()
    rows: dict[tuple, int] = {}
    for e in prof.key_averages(group_by_input_shape=True):
        kernel = SDPA_KERNELS.get(e.key)
        if kernel is None or not e.input_shapes or len(e.input_shapes[0]) != 4:
            continue
        tokens = int(e.input_shapes[0][2])
        key = (tokens, kernel, "backward" if e.key.endswith("_backward") else "forward")
        rows[key] = rows.get(key, 0) + e.count
    labels = labels or {}
    return [{"attention": labels.get(t, f"{t} tokens"), "tokens": t, "kernel": k, "pass": p, "calls": n}
            for (t, k, p), n in sorted(rows.items(), key=lambda kv: (kv[0][2] == "backward", -kv[0][0]))]


def top_ops(fn: Callable[[], Any], steps: int, device: torch.device, top: int = 15) -> list[dict]:
    """The operators with the most self time (device time on CUDA) over ``steps`` calls of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn()
        synchronize(device)
    events = [e for e in prof.key_averages() if not e.key.startswith("ProfilerStep")]

    def self_us(e) -> float:
        return e.self_device_time_total if gpu else e.self_cpu_time_total

    total = sum(self_us(e) for e in events) or 1.0
    events.sort(key=self_us, reverse=True)
    return [{"op": e.key, "self_ms_per_call": self_us(e) / 1e3 / steps, "percent": 100 * self_us(e) / total,
             "calls": e.count / steps} for e in events[:top]]


def _amp_name(dtype: torch.dtype | None) -> str:
    return {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(dtype, "float32")


def _train_amp_dtype(cfg: DictConfig) -> torch.dtype | None:
    amp = cfg.train.get("amp") or {}
    if not amp.get("enabled", False):
        return None
    name = amp.get("dtype", "float16")
    if name not in AMP_DTYPES:
        raise ValueError(f"train.amp.dtype must be one of {list(AMP_DTYPES)}, got {name!r}")
    return AMP_DTYPES[name]


def _load(loader: Any, count: int) -> tuple[list, list[float]]:
    """``count`` batches from ``loader`` (cycling a finite one) and the seconds each took."""
    import time

    batches, times = [], []
    it = iter(loader)
    for _ in range(count):
        start = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            if not batches:
                raise ValueError("the data loader yielded no batches") from None
            it = iter(loader)
            batch = next(it)
        times.append(time.perf_counter() - start)
        batches.append(batch)
    return batches, times


def _phase_stats(times: list[float], warmup: int, images_per_call: int) -> dict[str, float]:
    timed = times[warmup:]
    median = statistics.median(timed)
    return {"first_call_s": times[0], "s_per_iter": median, "mean_s_per_iter": statistics.fmean(timed),
            "s_per_image": median / images_per_call, "images_per_s": images_per_call / median,
            "compile_s_estimate": max(0.0, times[0] - median), "timed_calls": len(timed)}


class _EagerForward(nn.Module):
    """Calls ``module.forward`` itself, so fvcore traces the eager code of a module that
    ``train.compile`` compiled in place (its ``__call__`` would enter the compiled graph)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> Any:
        return self.module.forward(x)


def backbone_flops(model: nn.Module, image_size: int | None, device: torch.device) -> dict[str, Any] | None:
    """:func:`~.flops.count_flops` of ``model.backbone`` on one square-padded image (fp32, eval
    mode; the model's mode is restored). ``None`` when the model has no fixed input size.

    Returns:
        ``{"gflops_per_image", "module", "input"}``; GFLOPs in fvcore's convention (multiply-adds).
    """
    if not image_size or not hasattr(model, "backbone"):
        logger.warning("FLOPs not counted: the model has no backbone with a fixed (square-padded) input size")
        return None
    training = model.training
    model.eval()
    try:
        x = torch.zeros(1, 3, image_size, image_size, device=device)
        gflops = count_flops(_EagerForward(model.backbone), x) / 1e9
    finally:
        model.train(training)
    return {"gflops_per_image": gflops, "module": "model.backbone", "input": list(x.shape)}


def _add_achieved(report: dict[str, Any]) -> None:
    """Per phase: achieved TFLOP/s of the counted backbone and MFU (fp16 / bf16 phases, known GPU)."""
    peak = report["environment"].get("bf16_peak_tflops")
    for phase in ("train", "inference"):
        r = report.get(phase)
        if not r:
            continue
        r["tflops"] = achieved_tflops(report["flops"]["gflops_per_image"], r["s_per_image"], phase == "train")
        r["mfu"] = mfu(r["tflops"], peak) if r["amp"] in ("float16", "bfloat16") else None


def measure_training(cfg: DictConfig, model: nn.Module, device: torch.device, warmup: int, iters: int,
                     labels: dict[int, str], profile_steps: int = 0) -> dict[str, Any]:
    """Time ``iters`` training steps of ``model`` after ``warmup`` (see the module docstring)."""
    batch = int(cfg.dataloader.train.total_batch_size)
    amp_dtype = _train_amp_dtype(cfg)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    # Enough distinct batches that the step sees varied images; the loader is timed while loading.
    batches, load_times = _load(instantiate(cfg.dataloader.train), min(warmup + iters, 8))
    clip = cfg.train.get("clip_grad", {})
    trainer = SimpleTrainer(model, itertools.cycle(batches), optimizer, amp_dtype=amp_dtype,
                            clip_grad_norm=clip.get("max_norm") if clip.get("enabled") else None, device=device)
    out: dict[str, Any] = {"batch_size": batch, "amp": _amp_name(amp_dtype)}
    with EventStorage(0) as trainer.storage:
        times = time_steps(trainer.run_step, 0, 1 + max(warmup - 1, 0), device)
        baseline = reset_peak_memory(device)
        times += time_steps(trainer.run_step, 0, iters, device)
        out["peak_mem_mb"] = peak_memory_mb(device, baseline)
        out.update(_phase_stats(times, max(warmup, 1), batch))
        out["attention_kernels"] = sdpa_kernels(trainer.run_step, labels)
        if profile_steps:
            out["top_ops"] = top_ops(trainer.run_step, profile_steps, device)
    out["peak_mem_mb_per_image"] = out["peak_mem_mb"] / batch
    out["loader_s_per_batch"] = statistics.fmean(load_times[1:]) if len(load_times) > 1 else load_times[0]
    return out


def measure_inference(cfg: DictConfig, model: nn.Module, device: torch.device, warmup: int, images: int,
                      labels: dict[int, str], profile_steps: int = 0) -> dict[str, Any]:
    """Time ``images`` single-image forward passes after ``warmup`` (see the module docstring)."""
    amp_dtype = inference_amp_dtype(cfg, device)
    cfg.dataloader.test.batch_size = 1
    inputs, _ = _load(instantiate(cfg.dataloader.test), warmup + images)
    model.eval()
    stream = itertools.cycle(inputs)

    def forward() -> None:
        with inference_context(device, amp_dtype):
            model(next(stream))

    times = time_steps(forward, 0, max(warmup, 1), device)
    baseline = reset_peak_memory(device)
    times += time_steps(forward, 0, images, device)
    out: dict[str, Any] = {"batch_size": 1, "amp": _amp_name(amp_dtype),
                           "peak_mem_mb": peak_memory_mb(device, baseline)}
    out.update(_phase_stats(times, max(warmup, 1), 1))
    out["attention_kernels"] = sdpa_kernels(forward, labels)
    if profile_steps:
        out["top_ops"] = top_ops(forward, profile_steps, device)
    return out


def benchmark_detector(cfg: DictConfig, device: torch.device, batch_size: int = 4, warmup: int = 5,
                       train_iters: int = 20, inference_images: int = 50, train: bool = True,
                       inference: bool = True, profile_steps: int = 0, flops: bool = False) -> dict[str, Any]:
    """Speed and memory of ``cfg``'s detector on ``device`` (one process).

    Args:
        cfg: a detection LazyConfig (overrides already applied).
        device: where to run.
        batch_size: images per training step.
        warmup: untimed steps / images before each timed phase (at least 1).
        train_iters: timed training steps.
        inference_images: timed single-image forward passes.
        train, inference: which phases to run.
        profile_steps: > 0 adds the profiler's top operators over that many steps / images.
        flops: add ``report["flops"]`` (:func:`backbone_flops`) and each phase's ``tflops`` and
            ``mfu`` (``None`` for an fp32 phase or a GPU without a known peak).

    Returns:
        ``{"environment", "config", "image_size", "compile", "train", "inference"}`` (and
        ``"flops"``); see :func:`format_speed_report`.
    """
    if warmup < 1 or train_iters < 1 or inference_images < 1 or batch_size < 1:
        raise ValueError(f"warmup, train iterations, inference images and batch size must be >= 1, got {warmup}, "
                         f"{train_iters}, {inference_images}, {batch_size}")
    cfg.train.device = device.type
    cfg.dataloader.train.total_batch_size = batch_size
    resolve_num_classes(cfg)
    torch.manual_seed(int(cfg.train.get("seed", 0)))
    model = build_model(cfg, device)
    image_size = int(getattr(model.backbone, "square_pad", 0) or 0) or None
    labels = _attention_labels(model, image_size)
    compile_opts = dict(cfg.train.get("compile") or {})
    report: dict[str, Any] = {"environment": environment(device), "image_size": image_size,
                              "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                              "compile": compile_opts if compile_opts.get("enabled") else None}
    if train:
        report["train"] = measure_training(cfg, model, device, warmup, train_iters, labels, profile_steps)
    if inference:
        report["inference"] = measure_inference(cfg, model, device, warmup, inference_images, labels, profile_steps)
    if flops:
        report["flops"] = backbone_flops(model, image_size, device)
        if report["flops"]:
            _add_achieved(report)
    return report


def _flops_line(report: dict[str, Any]) -> str:
    env, counted = report["environment"], report["flops"]
    peak = env.get("bf16_peak_tflops")
    where = f"{env.get('gpu_card')}'s dense bf16 peak {peak:.0f} TFLOP/s" if peak else "no known bf16 peak here"
    parts = []
    for phase in ("train", "inference"):
        r = report.get(phase)
        if r and r.get("tflops") is not None:
            util = f" (MFU {100 * r['mfu']:.1f}%)" if r.get("mfu") is not None else ""
            parts.append(f"{phase} {r['tflops']:.3g} TFLOP/s{util}")
    shape = "x".join(str(d) for d in counted["input"])
    return (f"FLOPs of {counted['module']} (fvcore, {shape}): {counted['gflops_per_image']:.4g} G multiply-adds per "
            f"image; achieved {', '.join(parts)}; {where} (heads not counted: a lower bound)")


def format_speed_report(report: dict[str, Any], title: str = "") -> str:
    """The report as text: environment line, a speed / memory table, attention kernels, top ops."""
    from tabulate import tabulate

    env = report["environment"]
    where = env.get("gpu") or env.get("cpu", "")
    lines = [title] if title else []
    lines.append(f"{where} ({env['device']}, {env['threads']} threads), torch {env['torch']}, torchvision "
                 f"{env['torchvision']}, CUDA {env['cuda']}" + (f", cuDNN {env['cudnn']}" if env.get("cudnn") else ""))
    compile_opts = report.get("compile")
    lines.append(f"input {report['image_size']} px, {report['params_m']:.1f}M parameters, torch.compile: "
                 + (f"model.{compile_opts.get('module', 'backbone')}" if compile_opts else "off"))
    mem = "max_memory_allocated" if env["device"].startswith("cuda") else "max RSS growth"
    rows = []
    for phase in ("train", "inference"):
        r = report.get(phase)
        if not r:
            continue
        rows.append([phase, r["batch_size"], r["amp"], f"{r['s_per_iter']:.4f}", f"{r['s_per_image']:.4f}",
                     f"{r['images_per_s']:.1f}", f"{r['peak_mem_mb'] / 1024:.2f}",
                     f"{r['peak_mem_mb'] / 1024 / r['batch_size']:.2f}", f"{r['first_call_s']:.2f}",
                     f"{r['compile_s_estimate']:.2f}" if compile_opts else "-", r["timed_calls"]])
    lines.append(tabulate(rows, headers=["phase", "batch", "dtype", "s / iter (median)", "s / image", "images / s",
                                         f"peak GB ({mem})", "GB / image", "first call s", "compile s (est.)",
                                         "timed"], tablefmt="github"))
    if report.get("flops"):
        lines.append(_flops_line(report))
    if report.get("train"):
        lines.append(f"data loader: {report['train']['loader_s_per_batch']:.3f} s / batch of "
                     f"{report['train']['batch_size']} (not in the step time)")
    kernels = [[phase, k["attention"], k["tokens"], k["pass"], k["kernel"], k["calls"]]
               for phase in ("train", "inference") for k in (report.get(phase) or {}).get("attention_kernels", [])]
    if kernels:
        lines.append("\nSDPA kernels (one step / one image):")
        lines.append(tabulate(kernels, headers=["phase", "attention", "tokens", "pass", "kernel", "calls"],
                              tablefmt="github"))
    for phase in ("train", "inference"):
        ops = (report.get(phase) or {}).get("top_ops")
        if ops:
            lines.append(f"\nTop operators by self time, {phase} (per step / image):")
            lines.append(tabulate([[o["op"], f"{o['self_ms_per_call']:.3f}", f"{o['percent']:.1f}",
                                    f"{o['calls']:.0f}"] for o in ops],
                                  headers=["op", "self ms", "%", "calls"], tablefmt="github"))
    return "\n".join(lines)
