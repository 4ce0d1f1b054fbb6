"""COCO box and mask AP with pycocotools (faster-coco-eval, when installed, gives identical numbers).

The evaluator collects predictions on every rank, gathers them on the main process, writes
``inference/coco_instances_results.json`` and scores it against the dataset's COCO JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
from collections import OrderedDict
from typing import Iterable, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tabulate import tabulate

from ..data.catalog import get_metadata
from ..utils import comm

__all__ = ["COCOEvaluator", "inference_on_dataset", "evaluate_coco_results", "instances_to_coco_json",
           "format_results_table"]

logger = logging.getLogger(__name__)

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def instances_to_coco_json(output: dict, image_id: int, dataset_ids: Sequence[int],
                           with_masks: bool = True) -> list[dict]:
    """Convert one image's detections (XYXY boxes, 0-based labels, bool masks) to COCO results."""
    if len(output["boxes"]) == 0:
        return []
    # One device-to-host copy for boxes, scores and labels (each copy waits for the device).
    packed = torch.cat([output["boxes"].detach().float(), output["scores"].detach().float()[:, None],
                        output["labels"].detach().float()[:, None]], dim=1).cpu().double().numpy()
    boxes = packed[:, :4]
    boxes[:, 2:] -= boxes[:, :2]  # XYXY -> XYWH
    scores = packed[:, 4].tolist()
    labels = packed[:, 5].astype(np.int64).tolist()
    rles = None
    if with_masks and "masks" in output:
        masks = output["masks"].detach().to(torch.uint8).cpu().numpy()
        rles = [mask_util.encode(np.asfortranarray(m)) for m in masks]
        for r in rles:
            r["counts"] = r["counts"].decode("ascii")
    results = []
    for k in range(len(boxes)):
        res = {"image_id": int(image_id), "category_id": int(dataset_ids[labels[k]]),
               "bbox": [round(float(v), 3) for v in boxes[k]], "score": round(float(scores[k]), 5)}
        if rles is not None:
            res["segmentation"] = rles[k]
        results.append(res)
    return results


def _cocoeval_class(use_fast_impl: bool):
    if use_fast_impl:
        try:
            from faster_coco_eval import COCOeval_faster

            return COCOeval_faster
        except ImportError:
            pass
    return COCOeval


def evaluate_coco_results(
    gt_json: str,
    results: list[dict] | str,
    tasks: Sequence[str] = ("bbox", "segm"),
    class_names: Sequence[str] | None = None,
    use_fast_impl: bool = False,
) -> "OrderedDict[str, dict[str, float]]":
    """Score COCO results against ground truth; AP values in percent (Detectron2's convention).

    Args:
        gt_json: the COCO instances file.
        results: a results list or the path of a results JSON.
        tasks: "bbox" and/or "segm".
        class_names: adds per-class ``AP-<name>`` entries (in the GT's sorted category order).
        use_fast_impl: use faster-coco-eval when it is installed.

    Returns:
        ``{task: {"AP", "AP50", "AP75", "APs", "APm", "APl", ["AP-<class>" ...]}}``.
    """
    if isinstance(results, str):
        with open(results, encoding="utf-8") as f:
            results = json.load(f)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_json)
    out: OrderedDict[str, dict[str, float]] = OrderedDict()
    for task in tasks:
        task_results = results
        if task == "segm":
            task_results = [r for r in results if "segmentation" in r]
        if not task_results:
            logger.warning("No %s predictions: every %s metric is NaN", task, task)
            out[task] = {m: float("nan") for m in METRIC_NAMES}
            continue
        # loadRes drops "bbox" when it sees "segmentation" only for segm; copy to keep lists intact.
        task_results = [dict(r) for r in task_results]
        if task == "bbox":
            for r in task_results:
                r.pop("segmentation", None)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            coco_dt = coco_gt.loadRes(task_results)
            ev = _cocoeval_class(use_fast_impl)(coco_gt, coco_dt, task)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        summary = "\n".join(line for line in buf.getvalue().splitlines() if line.lstrip().startswith("Average"))
        logger.info("COCOeval (%s):\n%s", task, summary)
        # pycocotools reports -1 where a metric is undefined (no GT in that area range).
        metrics = {m: float(ev.stats[i] * 100) if ev.stats[i] >= 0 else float("nan")
                   for i, m in enumerate(METRIC_NAMES)}
        if class_names is not None:
            precision = ev.eval["precision"]  # (iou, recall, class, area, maxdets)
            for k, name in enumerate(class_names):
                p = precision[:, :, k, 0, -1]
                p = p[p > -1]
                metrics[f"AP-{name}"] = float(np.mean(p) * 100) if p.size else float("nan")
        out[task] = metrics
    return out


def format_results_table(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table: one row per task, the six COCO AP metrics as columns."""
    rows = [[task] + [f"{metrics.get(m, float('nan')):.3f}" for m in METRIC_NAMES] for task, metrics in results.items()]
    return tabulate(rows, headers=["task", *METRIC_NAMES], tablefmt="pipe")


class COCOEvaluator:
    """Collect detections and compute COCO AP for a registered dataset.

    Args:
        dataset_name: the catalog name of the evaluation dataset (its JSON is the ground truth).
        output_dir: where ``coco_instances_results.json`` is written (``None``: not written).
        tasks: "bbox" and/or "segm".
        use_fast_impl: faster-coco-eval when installed (identical numbers, faster).
    """

    def __init__(self, dataset_name: str, output_dir: str | None = None, tasks: Sequence[str] = ("bbox", "segm"),
                 use_fast_impl: bool = False) -> None:
        self.dataset_name = dataset_name
        self.output_dir = output_dir
        self.tasks = tuple(tasks)
        self.use_fast_impl = use_fast_impl
        self._metadata = None
        self._predictions: list[dict] = []
        self.predictions: list[dict] = []  # every process's detections, on the main process after evaluate()

    @property
    def metadata(self):
        if self._metadata is None:
            self._metadata = get_metadata(self.dataset_name)
        return self._metadata

    def reset(self) -> None:
        self._predictions = []

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        ids = self.metadata.thing_dataset_ids
        for inp, out in zip(inputs, outputs):
            self._predictions.extend(instances_to_coco_json(out, inp["image_id"], ids, with_masks="segm" in self.tasks))

    def evaluate(self) -> "OrderedDict[str, dict[str, float]]":
        gathered = comm.all_gather(self._predictions)
        if not comm.is_main_process():
            return OrderedDict()
        predictions = [p for part in gathered for p in part]
        self.predictions = predictions
        if self.output_dir:
            os.makedirs(self.output_dir, exist_ok=True)
            path = os.path.join(self.output_dir, "coco_instances_results.json")
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(predictions, f)
            os.replace(tmp, path)
            logger.info("Wrote %d detections to %s", len(predictions), path)
        results = evaluate_coco_results(
            self.metadata.json_file, predictions, self.tasks, self.metadata.thing_classes, self.use_fast_impl
        )
        return results


def inference_on_dataset(model: torch.nn.Module, data_loader: Iterable, evaluator: COCOEvaluator,
                         amp_dtype: torch.dtype | None = None) -> dict:
    """Run the model over a loader, feed the evaluator, return its results.

    The model runs in eval mode under ``torch.inference_mode`` and, when ``amp_dtype`` is given,
    autocast in it (``vitdet_bench.engine.speed.inference_amp_dtype`` chooses it from the config).
    Progress and timing count images, whatever the loader's batch size. The log separates the
    model's time per image (CUDA-synchronised, Detectron2's "pure compute time", without the first
    5 batches) from the evaluator's (COCO conversion, RLE encoding).
    """
    evaluator.reset()
    was_training = model.training
    model.eval()
    # This process's images: its sampler's shard under several processes, else the dataset.
    shard = getattr(data_loader, "sampler", None) or getattr(data_loader, "dataset", None)
    total = len(shard) if shard is not None and hasattr(shard, "__len__") else None
    device = next(model.parameters()).device
    warmup = 5
    start = time.perf_counter()
    compute_time = eval_time = 0.0
    batches = images = timed_images = 0
    next_report = 50
    # The same context as vitdet_bench.engine.speed.inference_context (not imported: the engine
    # imports this module).
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                                enabled=amp_dtype is not None):
        for inputs in data_loader:
            tick = time.perf_counter()
            outputs = model(inputs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            tock = time.perf_counter()
            evaluator.process(inputs, outputs)
            images += len(inputs)
            batches += 1
            if batches > warmup:
                compute_time += tock - tick
                eval_time += time.perf_counter() - tock
                timed_images += len(inputs)
            if total and (images >= next_report or images == total):
                logger.info("Inference: %d/%d images, %.3f s / image", images, total,
                            (time.perf_counter() - start) / images)
                next_report = (images // 50 + 1) * 50
    model.train(was_training)
    if images:
        elapsed = time.perf_counter() - start
        logger.info("Inference done: %d images in %.1f s (%.4f s / image)%s", images, elapsed, elapsed / images,
                    f", {amp_dtype} autocast" if amp_dtype else "")
    if timed_images:
        logger.info("Model %.4f s / image, evaluator %.4f s / image (after %d warm-up batches)",
                    compute_time / timed_images, eval_time / timed_images, warmup)
    return evaluator.evaluate()
