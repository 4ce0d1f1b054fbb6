"""Images / s of a pre-training config's whole step (data loading and views included), before and
after the demo's data path (``tools/benchmark_pretrain.py --pipeline``).

"After" is the config as it is: the pool read as rows of a memory-mapped array, each batch's views
rendered at once on tensors (:mod:`vitdet_bench.pretrain.views`), the config's autocast. "Before"
is the data path the demo had: the same pool images as JPEG files (quality 90), decoded and
transformed one image at a time with PIL in the loader, in fp32. Both run the engine's own
training step (:class:`~vitdet_bench.engine.SimpleTrainer`) with its loader, so the time includes
data; the first ``warmup`` steps are excluded and the median step is reported.
"""

from __future__ import annotations

import logging
import os
import statistics
import time

import cv2
import torch
from omegaconf import DictConfig

from ..config import LazyCall as L
from ..config import LazyConfig, instantiate
from ..engine.defaults import build_model
from ..engine.train_loop import AMP_DTYPES, SimpleTrainer
from ..utils.events import EventStorage

__all__ = ["jpeg_copy_of_pool", "pipeline_throughput", "the_old_data_path"]

logger = logging.getLogger("vitdet_bench.benchmark")


def jpeg_copy_of_pool(records: list[dict], out_dir: str, labels: bool) -> str:
    """The pool's images as JPEG files ``out_dir/<class>/<i>.jpg`` (quality 90, the demo's old pool
    format); an image folder the per-image path reads. Written once."""
    from ..data.mapper import read_image

    done = os.path.join(out_dir, f"DONE_{len(records)}")
    if os.path.isfile(done):
        return out_dir
    for i, r in enumerate(records):
        folder = os.path.join(out_dir, f"class{r['label'] if labels else 0}")
        os.makedirs(folder, exist_ok=True)
        cv2.imwrite(os.path.join(folder, f"{i:06d}.jpg"), read_image(r)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    open(done, "w").close()
    return out_dir


def the_old_data_path(cfg: DictConfig, jpeg_root: str, labels: bool) -> None:
    """Turn a demo pre-training config into the "before" data path (in place): JPEG files, per-image
    PIL views, fp32."""
    from ..pretrain.data import image_folder_dataset

    cfg.dataloader.train.dataset = L(image_folder_dataset)(root=jpeg_root, labels=True)
    if not labels:  # the self-supervised methods ignore the folder's labels
        cfg.dataloader.train.dataset.labels = True
    cfg.dataloader.train.mapper.batched = False
    cfg.train.amp.enabled = False


def pipeline_throughput(cfg: DictConfig, steps: int = 10, warmup: int = 3) -> dict:
    """Time ``steps`` whole training steps (data included) of a pre-training config on its device.

    Returns:
        ``{"s_per_step", "images_per_s", "data_s_per_step", "batch_size", "amp"}`` (medians).
    """
    from ..pretrain.engine import _fill_num_classes

    _fill_num_classes(cfg)
    model = build_model(cfg)
    device = next(model.parameters()).device
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    loader = instantiate(cfg.dataloader.train)
    amp = cfg.train.amp
    amp_dtype = AMP_DTYPES[amp.get("dtype", "float16")] if amp.enabled else None
    trainer = SimpleTrainer(model, loader, optimizer, amp_dtype=amp_dtype, device=device)
    totals, datas = [], []
    with EventStorage(0) as trainer.storage:
        for i in range(warmup + steps):
            trainer.iter = i
            start = time.perf_counter()
            trainer.run_step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            totals.append(time.perf_counter() - start)
            datas.append(trainer.storage.latest().get("data_time", (float("nan"),))[0])
    batch = int(cfg.dataloader.train.total_batch_size)
    step = statistics.median(totals[warmup:])
    return {"s_per_step": step, "images_per_s": batch / step, "data_s_per_step": statistics.median(datas[warmup:]),
            "batch_size": batch, "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32"}


def load_pretrain_config(path: str, overrides: list[str]) -> DictConfig:
    """A pre-training config with overrides (as ``tools/pretrain_net.py`` reads it)."""
    return LazyConfig.apply_overrides(LazyConfig.load(path), list(overrides))


def demo_pretrain_steps(benchmark_file: str) -> list[tuple[str, str, list[str]]]:
    """``(name, config, overrides)`` of every distinct pre-training step of a benchmark file."""
    from .spec import load_benchmark

    spec = load_benchmark(benchmark_file)
    steps, seen = [], set()
    for init in spec.inits:
        for step in init.pretrain:
            if step.config not in seen:
                seen.add(step.config)
                steps.append((step.name, step.config, [o for o in step.overrides if "{" not in o]))
    return steps


def pipeline_report(benchmark_file: str, scratch: str, steps: int = 10, warmup: int = 3,
                    only: list[str] | None = None) -> list[dict]:
    """Before / after images / s of every pre-training step of a benchmark file (see the module docstring).

    Args:
        benchmark_file: e.g. ``configs/benchmark/demo.py``.
        scratch: a folder for the JPEG copy of the pool and a stand-in tokenizer file.
        steps: timed steps per measurement.
        warmup: steps excluded first.
        only: step names to measure (default: all).
    Returns:
        one dict per step: ``name``, ``config``, ``before``, ``after`` (see :func:`pipeline_throughput`), ``ratio``.
    """
    from ..pretrain.tokenizers import save_tokenizer

    rows = []
    for name, config, overrides in demo_pretrain_steps(benchmark_file):
        if only and name not in only:
            continue
        cfg = load_pretrain_config(config, overrides)
        if "tokenizer" in cfg and cfg.tokenizer.get("kind") == "vq":
            # BEiT needs a tokenizer file: a fresh one of the demo's size (its cost is its forward pass).
            path = os.path.join(scratch, "tokenizer.pth")
            if not os.path.isfile(path):
                from ..config import LazyConfig as _L

                tok_cfg = _L.load(os.path.join(os.path.dirname(config), "tokenizer_vq_demo.py"))
                save_tokenizer(instantiate(tok_cfg.model), path)
            overrides = overrides + [f"tokenizer.path={path}"]
            cfg = load_pretrain_config(config, overrides)
        labels = bool(cfg.dataloader.train.dataset.get("labels", False))
        after = pipeline_throughput(cfg, steps, warmup)
        before_cfg = load_pretrain_config(config, overrides)
        records, _ = instantiate(before_cfg.dataloader.train.dataset)
        count = min(len(records), (steps + warmup) * int(before_cfg.dataloader.train.total_batch_size))
        root = jpeg_copy_of_pool(records[:count],
                                 os.path.join(scratch, f"jpeg_{'labels' if labels else 'plain'}_{count}"), labels)
        the_old_data_path(before_cfg, root, labels)
        before = pipeline_throughput(before_cfg, steps, warmup)
        rows.append({"name": name, "config": config, "before": before, "after": after,
                     "ratio": after["images_per_s"] / before["images_per_s"]})
        logger.info("%s: %.0f -> %.0f images / s", name, before["images_per_s"], after["images_per_s"])
    return rows
