"""Evaluation: COCO AP (bbox, segm)."""

from .coco_evaluation import (
    COCOEvaluator,
    evaluate_coco_results,
    format_results_table,
    inference_on_dataset,
    instances_to_coco_json,
)

__all__ = [
    "COCOEvaluator",
    "evaluate_coco_results",
    "format_results_table",
    "inference_on_dataset",
    "instances_to_coco_json",
]
