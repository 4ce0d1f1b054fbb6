"""The cost of a trained detector: parameters, FLOPs and inference time (the report's complexity section).

FLOPs are fvcore's count (one multiply-add = one flop, as Detectron2 and the ViTDet paper report)
for the backbone and neck on one padded test image; the RoI heads' cost depends on the number of
proposals and is left out (it is the same for every initialization of one architecture).
Inference time is the median over test images of the whole model (pre-processing to masks).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time

import torch

__all__ = ["measure_cost"]

logger = logging.getLogger(__name__)


def measure_cost(run_dir: str, num_images: int = 8, device: str = "cpu") -> dict:
    """Measure and write ``run_dir/cost.json`` from the run's ``config.yaml`` and ``model_final.pth``."""
    from fvcore.nn import FlopCountAnalysis

    from ..checkpoint import Checkpointer
    from ..config import LazyConfig, instantiate
    from ..engine.defaults import build_model

    cfg = LazyConfig.load(os.path.join(run_dir, "config.yaml"))
    cfg.train.device = device
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
            flops = FlopCountAnalysis(model.backbone, images)
            flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            gflops = flops.total() / 1e9
        model([inputs[0]])  # warm-up
        times = []
        for x in inputs:
            start = time.perf_counter()
            model([x])
            times.append(time.perf_counter() - start)
    cost = {
        "params_m": params / 1e6,
        "backbone_params_m": backbone_params / 1e6,
        "backbone_gflops": gflops,
        "flops_input": list(images.shape[-2:]) if images is not None else None,
        "inference_s_per_image": statistics.median(times),
        "inference_images": len(times),
        "device": device,
        "threads": torch.get_num_threads(),
    }
    with open(os.path.join(run_dir, "cost.json"), "w") as f:
        json.dump(cost, f, indent=1)
    return cost
