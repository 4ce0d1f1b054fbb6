"""The cost of a trained detector: parameters, FLOPs, inference time and where training time goes
(the report's complexity section).

FLOPs are :func:`.flops.count_flops` (fvcore's count, one multiply-add = one flop, as Detectron2 and
the ViTDet paper report, with the fused attention kernel counted) for the backbone and neck on one
padded test image; the RoI heads' cost depends on the number of
proposals and is left out (it is the same for every initialization of one architecture).
Inference time is the median over test images of the whole model (pre-processing to masks), in the
config's inference dtype and CUDA-synchronised (``tools/benchmark_detector.py`` times one config
in full: training too, peak memory, kernels).
The training profile runs a few steps of the run's own config under ``torch.profiler``: time per
stage (data, forward, backward, optimizer) and the operators that take the most time.
"""

from __future__ import annotations

import json
import logging
import os
import statistics

import torch

from ..engine.speed import inference_amp_dtype, inference_context
from ..utils.timing import time_steps
from .flops import count_flops

__all__ = ["measure_cost", "profile_training"]

STAGES = ("data", "forward", "backward", "optimizer")

logger = logging.getLogger(__name__)


def profile_training(cfg, model: torch.nn.Module, steps: int = 5, warmup: int = 2, top: int = 15) -> dict:
    """Profile ``steps`` training iterations of ``model`` with the config's optimizer and loader.

    Returns:
        ``{"steps", "batch_size", "stages": [{"stage", "s_per_iter", "percent"}], "ops": [{"op",
        "self_s_per_iter", "percent", "calls_per_iter"}]}``, ops sorted by self time (CUDA time on
        a GPU), stage times from ``record_function`` ranges.
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    from ..config import instantiate

    device = next(model.parameters()).device
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    batches = iter(instantiate(cfg.dataloader.train))
    model.train()

    def step() -> None:
        with record_function("data"):
            data = next(batches)
        with record_function("forward"):
            losses = sum(model(data).values())
        with record_function("backward"):
            optimizer.zero_grad(set_to_none=True)
            losses.backward()
        with record_function("optimizer"):
            optimizer.step()

    for _ in range(warmup):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = prof.key_averages()
    gpu = device.type == "cuda"

    def self_time(e) -> float:  # microseconds
        return e.self_device_time_total if gpu else e.self_cpu_time_total

    stage_time = {e.key: (e.device_time_total if gpu else e.cpu_time_total) for e in events if e.key in STAGES}
    total_stage = sum(stage_time.values()) or 1.0
    ops = sorted((e for e in events if e.key not in STAGES and not e.key.startswith("ProfilerStep")),
                 key=self_time, reverse=True)
    total_ops = sum(self_time(e) for e in ops) or 1.0
    return {
        "steps": steps,
        "batch_size": int(cfg.dataloader.train.total_batch_size),
        "device": str(device),
        "stages": [{"stage": k, "s_per_iter": stage_time.get(k, 0.0) / 1e6 / steps,
                    "percent": 100 * stage_time.get(k, 0.0) / total_stage} for k in STAGES],
        "ops": [{"op": e.key, "self_s_per_iter": self_time(e) / 1e6 / steps, "percent": 100 * self_time(e) / total_ops,
                 "calls_per_iter": e.count / steps} for e in ops[:top]],
    }


def measure_cost(run_dir: str, num_images: int = 8, device: str = "cpu", profile_steps: int = 0) -> dict:
    """Measure and write ``run_dir/cost.json`` from the run's ``config.yaml`` and ``model_final.pth``
    (``profile_steps`` > 0 adds the training profile, :func:`profile_training`)."""
    from ..checkpoint import Checkpointer
    from ..config import LazyConfig, instantiate
    from ..engine.defaults import build_model

    cfg = LazyConfig.load(os.path.join(run_dir, "config.yaml"))
    cfg.train.device = device
    if "compile" in cfg.train:
        cfg.train.compile.enabled = False  # fvcore traces the eager backbone
    model = build_model(cfg, torch.device(device))
    weights = os.path.join(run_dir, "model_final.pth")
    if os.path.isfile(weights):
        Checkpointer(model, run_dir).load(weights, full=False)
    model.eval()
    loader = instantiate(cfg.dataloader.test)
    inputs = []
    for batch in loader:
        inputs.extend(batch)
        if len(inputs) >= num_images:
            break
    if not inputs:
        raise ValueError(f"{run_dir}: the test loader yielded no images")
    params = sum(p.numel() for p in model.parameters())
    backbone_params = sum(p.numel() for p in model.backbone.parameters())
    with torch.no_grad():
        images = model.preprocess(inputs[:1]).tensors if hasattr(model, "preprocess") else None
        gflops = None
        if images is not None:
            gflops = count_flops(model.backbone, images) / 1e9
    # As evaluation runs: inference mode, the config's inference autocast, one image per pass,
    # each timed call synchronised on CUDA (one warm-up image first).
    dev = torch.device(device)
    amp_dtype = inference_amp_dtype(cfg, dev)
    stream = iter([inputs[0]] + inputs)

    def forward() -> None:
        with inference_context(dev, amp_dtype):
            model([next(stream)])

    times = time_steps(forward, 1, len(inputs), dev)
    profile = None
    if profile_steps > 0:
        profile = profile_training(cfg, model, steps=profile_steps)
    cost = {
        "params_m": params / 1e6,
        "backbone_params_m": backbone_params / 1e6,
        "backbone_gflops": gflops,
        "flops_input": list(images.shape[-2:]) if images is not None else None,
        "inference_s_per_image": statistics.median(times),
        "inference_dtype": str(amp_dtype or torch.float32).replace("torch.", ""),
        "inference_images": len(times),
        "device": device,
        "threads": torch.get_num_threads(),
        "train_profile": profile,
    }
    with open(os.path.join(run_dir, "cost.json"), "w") as f:
        json.dump(cost, f, indent=1)
    return cost
