"""train.eval_subset: the convergence curve's evaluations score a subset of the test set; the final
evaluation scores all of it and, from the same detections, the subset (engine/defaults.py)."""

import argparse
import json
import os

import pytest

from vitdet_bench.benchmark.collect import collect_run
from vitdet_bench.data.catalog import get_dataset_spec
from vitdet_bench.engine import main
from vitdet_bench.evaluation import evaluate_coco_results

from conftest import DEMO_CONFIG, FAST_OVERRIDES


def _args(out, *extra):
    opts = [*FAST_OVERRIDES, "train.max_iter=4", "train.eval_period=2", "train.log_period=1",
            "dataloader.test.dataset.names=demo_val100", "train.eval_subset=demo_minival",
            f"train.output_dir={out}", *extra]
    return argparse.Namespace(config_file=DEMO_CONFIG, opts=opts, resume=False, eval_only=False, num_gpus=1,
                              num_machines=1, machine_rank=0, dist_url="auto", overwrite=False)


def test_intermediate_points_score_the_subset_and_the_final_scores_both(tmp_path, demo_root):
    out = tmp_path / "run"
    main(_args(out))
    rows = [json.loads(line) for line in open(out / "metrics.json")]
    evals = [r for r in rows if any(k.endswith("bbox/AP") for k in r)]
    assert [r["iteration"] for r in evals] == [1, 3]
    assert "curve/bbox/AP" in evals[0] and "bbox/AP" not in evals[0]  # the subset only, mid-run
    final = evals[1]
    detections = json.load(open(out / "inference" / "coco_instances_results.json"))
    val100 = json.load(open(get_dataset_spec("demo_val100").json_file))
    assert {d["image_id"] for d in detections} <= {im["id"] for im in val100["images"]}
    minival = get_dataset_spec("demo_minival").json_file
    ids = {im["id"] for im in json.load(open(minival))["images"]}
    ref = evaluate_coco_results(minival, [d for d in detections if d["image_id"] in ids])  # pycocotools, directly
    full = evaluate_coco_results(get_dataset_spec("demo_val100").json_file, detections)
    assert (final["curve/bbox/AP"] == pytest.approx(ref["bbox"]["AP"])
            and final["curve/segm/AP"] == pytest.approx(ref["segm"]["AP"]))
    assert final["bbox/AP"] == pytest.approx(full["bbox"]["AP"])
    run = collect_run("run", str(out))
    assert run.status == "complete" and [p["iteration"] for p in run.curve] == [2, 4]
    assert (run.curve[-1]["bbox/AP"] == pytest.approx(ref["bbox"]["AP"])
            and run.metrics["bbox"]["AP"] == pytest.approx(full["bbox"]["AP"]))
    assert (run.eval_dataset, run.curve_dataset) == ("demo_val100", "demo_minival")


def test_a_subset_that_is_not_of_the_test_set_is_refused_before_training(tmp_path, demo_root):
    with pytest.raises(ValueError, match="train.eval_subset='demo_select'.*select.json.*subset of dataloader.test's "
                                         "dataset 'demo_val100'.*val100.json"):
        main(_args(tmp_path / "bad", "train.eval_subset=demo_select"))
    assert not os.path.isfile(tmp_path / "bad" / "metrics.json")
