"""Predictor and tools/predict.py: same detections as the evaluation pass; files written."""

import json
import os
import subprocess
import sys

import numpy as np
import torch

from vitdet_bench.checkpoint import Checkpointer
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.engine import Predictor, build_model, resolve_num_classes

from helpers import DEMO_CONFIG, REPO


def _saved_model(tmp_path):
    cfg = LazyConfig.load(DEMO_CONFIG)
    cfg.model.roi_heads.score_thresh = 0.0  # random heads: keep every detection so there is much to compare
    cfg.train.output_dir = str(tmp_path)
    resolve_num_classes(cfg)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    path = Checkpointer(model, str(tmp_path)).save("model_final")
    return cfg, model, path


def test_predictor_equals_the_evaluation_pass(demo_root, tmp_path):
    cfg, model, path = _saved_model(tmp_path)
    batch = next(iter(instantiate(cfg.dataloader.test)))[:2]
    with torch.no_grad():
        expected = model(batch)
    predictor = Predictor(cfg, path)
    got = predictor.predict([b["file_name"] for b in batch])
    for exp, res in zip(expected, got):
        assert len(res["scores"]) == len(exp["scores"]) > 0
        np.testing.assert_allclose(res["boxes"], exp["boxes"].numpy(), atol=1e-4)
        np.testing.assert_allclose(res["scores"], exp["scores"].numpy(), atol=1e-6)
        np.testing.assert_array_equal(res["labels"], exp["labels"].numpy())
        np.testing.assert_array_equal(res["masks"], exp["masks"].numpy())
        assert res["class_names"] == [predictor.class_names[i] for i in res["labels"]]
    assert predictor.class_names == ["circle", "square", "triangle", "star"]
    # An in-memory RGB array gives the same as its file.
    import cv2

    rgb = cv2.imread(batch[0]["file_name"])[..., ::-1]
    np.testing.assert_allclose(predictor(rgb)["boxes"], got[0]["boxes"], atol=1e-4)


def test_predictor_rejects_bad_images(demo_root, tmp_path):
    cfg, _, path = _saved_model(tmp_path)
    predictor = Predictor(cfg, path)
    import pytest

    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 RGB image"):
        predictor(np.zeros((10, 10), np.float32))
    with pytest.raises(OSError, match="does not exist"):
        predictor(str(tmp_path / "nope.jpg"))


def test_predict_tool_writes_images_and_json(demo_root, tmp_path):
    cfg, _, path = _saved_model(tmp_path)
    images = sorted(os.listdir(os.path.join(demo_root, "val")))[:2]
    inputs = [os.path.join(demo_root, "val", f) for f in images]
    out = tmp_path / "pred"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "predict.py"), "--config-file", DEMO_CONFIG,
                           "--weights", path, "--input", *inputs, "--output", str(out), "--score-threshold", "0.0",
                           "model.roi_heads.score_thresh=0.0"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((out / "detections.json").read_text())
    assert [os.path.basename(r["file_name"]) for r in data["images"]] == images
    predictor = Predictor(cfg, path, score_threshold=0.0)
    for rec, inp in zip(data["images"], inputs):
        assert os.path.isfile(rec["output_image"])
        det = predictor(inp)
        assert len(rec["detections"]) == len(det["scores"]) > 0
        first = rec["detections"][0]
        assert first["class_name"] in predictor.class_names and set(first["segmentation"]) == {"size", "counts"}
        np.testing.assert_allclose(first["bbox"][:2], det["boxes"][0][:2], atol=1e-3)


def test_custom_dataset_end_to_end(demo_root, tmp_path):
    """A user's COCO JSON with its own class names and sparse ids, given by CLI overrides only:
    num_classes comes from it, training and evaluation run, the Predictor names its classes."""
    from vitdet_bench.engine import default_argument_parser, main

    src = json.loads(open(os.path.join(demo_root, "val.json")).read())
    keep = {1: ("buoy", 7), 4: ("kite", 11)}  # two demo classes renamed, COCO-style non-contiguous ids
    src["categories"] = [{"id": new_id, "name": name} for _, (name, new_id) in keep.items()]
    src["images"] = src["images"][:8]
    ids = {im["id"] for im in src["images"]}
    src["annotations"] = [dict(a, category_id=keep[a["category_id"]][1]) for a in src["annotations"]
                          if a["image_id"] in ids and a["category_id"] in keep]
    ann = tmp_path / "mine.json"
    ann.write_text(json.dumps(src))
    image_root = os.path.join(demo_root, "val")
    out = tmp_path / "run"
    overrides = [
        "dataloader.train.dataset.names=mine_train", f"+dataloader.train.dataset.json_file={ann}",
        f"+dataloader.train.dataset.image_root={image_root}", "dataloader.test.dataset.names=mine_val",
        f"+dataloader.test.dataset.json_file={ann}", f"+dataloader.test.dataset.image_root={image_root}",
        "dataloader.train.total_batch_size=2", "train.max_iter=2", "train.eval_period=0", f"train.output_dir={out}",
    ]
    args = default_argument_parser().parse_args(["--config-file", DEMO_CONFIG, *overrides])
    results = main(args)
    assert set(results["bbox"]) >= {"AP", "AP-buoy", "AP-kite"}
    cfg = LazyConfig.load(str(out / "config.yaml"))
    assert cfg.model.num_classes == 2
    predictor = Predictor(cfg, str(out / "model_final.pth"))
    assert predictor.class_names == ["buoy", "kite"]
    assert predictor.model.roi_heads.box_predictor.cls_score.out_features == 3


def test_batched_evaluation_equals_one_image_at_a_time(demo_root, tmp_path):
    """dataloader.test.batch_size only changes how many images share a forward pass: every image's
    detections are the same as when it is alone (the demo evaluates 8 at a time)."""
    cfg, model, _ = _saved_model(tmp_path)
    cfg.dataloader.test.dataset.names = "demo_minival"
    outputs = {}
    for batch_size in (1, 4):
        cfg.dataloader.test.batch_size = batch_size
        loader = instantiate(cfg.dataloader.test)
        got = []
        with torch.no_grad():
            for batch in loader:
                got.extend(model(batch))
                if len(got) >= 8:
                    break
        outputs[batch_size] = got[:8]
    for one, four in zip(outputs[1], outputs[4]):
        assert len(one["scores"]) == len(four["scores"]) > 0
        torch.testing.assert_close(four["boxes"], one["boxes"], atol=1e-3, rtol=0)
        torch.testing.assert_close(four["scores"], one["scores"], atol=1e-5, rtol=0)
        assert torch.equal(four["labels"], one["labels"])
        assert (four["masks"] != one["masks"]).float().mean() < 1e-3


# ------------------------------------------------------------------ files: never over an input, nothing half-written


def _two_folders_same_name(demo_root, tmp_path):
    """a/x.jpg and b/x.jpg: two images of different sizes under the same file name."""
    import cv2

    val = sorted(os.listdir(os.path.join(demo_root, "val")))
    shape = cv2.imread(os.path.join(demo_root, "val", val[0])).shape
    names = [val[0], next(n for n in val[1:] if cv2.imread(os.path.join(demo_root, "val", n)).shape != shape)]
    inputs = []
    for folder, name in zip(("a", "b"), names):
        os.makedirs(tmp_path / "in" / folder, exist_ok=True)
        dst = tmp_path / "in" / folder / "x.jpg"
        dst.write_bytes(open(os.path.join(demo_root, "val", name), "rb").read())
        inputs.append(str(dst))
    return inputs


def test_predict_mirrors_input_paths_so_equal_names_do_not_collide(demo_root, tmp_path):
    from vitdet_bench.engine import predict_images

    cfg, _, path = _saved_model(tmp_path)
    predictor = Predictor(cfg, path, score_threshold=0.0)
    inputs = _two_folders_same_name(demo_root, tmp_path)
    out = tmp_path / "pred"
    result = predict_images(predictor, inputs, str(out))
    assert [r["output_image"] for r in result["images"]] == [str(out / "a" / "x.jpg"), str(out / "b" / "x.jpg")]
    import cv2

    # Each drawing is of its own input (the two images differ in size).
    shapes = [cv2.imread(p).shape for p in inputs]
    assert [cv2.imread(r["output_image"]).shape for r in result["images"]] == shapes
    saved = json.loads((out / "detections.json").read_text())
    assert saved["images"] == result["images"] and saved["skipped"] == []
    # A folder as input: its images, recursively, mirrored the same way.
    again = predict_images(predictor, [str(tmp_path / "in")], str(tmp_path / "pred2"))
    assert [os.path.relpath(r["output_image"], tmp_path / "pred2") for r in again["images"]] == ["a/x.jpg", "b/x.jpg"]


def test_predict_refuses_to_write_over_inputs(demo_root, tmp_path):
    from vitdet_bench.engine import predict_images

    cfg, _, path = _saved_model(tmp_path)
    predictor = Predictor(cfg, path)
    inputs = _two_folders_same_name(demo_root, tmp_path)
    before = [open(p, "rb").read() for p in inputs]
    import pytest

    with pytest.raises(ValueError, match="is the folder of the input images"):
        predict_images(predictor, [inputs[0]], str(tmp_path / "in" / "a"))
    with pytest.raises(ValueError, match="would be written over the input"):
        predict_images(predictor, inputs, str(tmp_path / "in"))  # in/a/x.jpg mirrored into in/ is in/a/x.jpg
    assert [open(p, "rb").read() for p in inputs] == before
    # The command line says so before building anything, with exit status 2.
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "predict.py"), "--config-file", DEMO_CONFIG,
                           "--weights", path, "--input", inputs[0], "--output", str(tmp_path / "in" / "a")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "is the folder of the input images" in proc.stderr
    assert [open(p, "rb").read() for p in inputs] == before


def test_a_bad_image_mid_list_leaves_the_previous_output_intact_or_is_listed_as_skipped(demo_root, tmp_path):
    from vitdet_bench.engine import predict_images

    cfg, _, path = _saved_model(tmp_path)
    predictor = Predictor(cfg, path)
    names = sorted(os.listdir(os.path.join(demo_root, "val")))[:3]
    folder = tmp_path / "in"
    folder.mkdir()
    for n in names:
        (folder / n).write_bytes(open(os.path.join(demo_root, "val", n), "rb").read())
    out = tmp_path / "pred"
    first = predict_images(predictor, [str(folder / names[0])], str(out))
    snapshot = {f: (out / f).read_bytes() for f in os.listdir(out)}
    raw = (folder / names[1]).read_bytes()
    (folder / names[1]).write_bytes(raw[: len(raw) // 2])  # truncated: the middle of the list
    import pytest

    from vitdet_bench.data.mapper import ImageReadError

    with pytest.raises(ImageReadError) as e:
        predict_images(predictor, [str(folder / n) for n in names], str(out))
    assert names[1] in str(e.value) and "truncated" in str(e.value) and "Nothing was written" in str(e.value)
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == snapshot  # no new drawing, the old JSON
    assert json.loads((out / "detections.json").read_text()) == first
    skipped = predict_images(predictor, [str(folder / n) for n in names], str(out), on_bad_image="skip")
    assert [os.path.basename(r["file_name"]) for r in skipped["images"]] == [names[0], names[2]]
    assert [os.path.basename(s["file_name"]) for s in skipped["skipped"]] == [names[1]]
    assert "truncated" in skipped["skipped"][0]["error"]
    assert json.loads((out / "detections.json").read_text()) == skipped
    assert sorted(os.listdir(out)) == sorted(["detections.json", names[0], names[2]])


def test_predict_inputs_that_are_folders_or_missing(demo_root, tmp_path):
    import pytest

    from vitdet_bench.engine.predict_images import collect_images

    with pytest.raises(FileNotFoundError, match="nope.jpg does not exist"):
        collect_images([str(tmp_path / "nope.jpg")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        collect_images([str(tmp_path / "empty")])
    found = collect_images([os.path.join(demo_root, "val")])
    assert len(found) == len(os.listdir(os.path.join(demo_root, "val"))) and all(f.endswith(".jpg") for f in found)


def _predict_tool(*argv):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", "predict.py"), "--config-file", DEMO_CONFIG,
                           *argv], capture_output=True, text=True, cwd=REPO)


def test_predict_never_replaces_a_file_that_is_not_an_earlier_drawing(demo_root, tmp_path):
    """Issue 27 #14: --input parent/a/x.jpg --output parent replaced parent/x.jpg, a different file that
    was not an input. Drawings of an earlier prediction into the folder are still replaced."""
    import pytest

    from vitdet_bench.engine import predict_images

    cfg, _, path = _saved_model(tmp_path)
    predictor = Predictor(cfg, path)
    inputs = _two_folders_same_name(demo_root, tmp_path)
    parent = tmp_path / "in"
    (parent / "x.jpg").write_bytes(b"the user's own x.jpg")
    with pytest.raises(ValueError) as e:
        predict_images(predictor, [inputs[0]], str(parent))
    assert f"would replace {parent / 'x.jpg'}, a file that is not a drawing of an earlier prediction" in str(e.value)
    proc = _predict_tool("--weights", path, "--input", inputs[0], "--output", str(parent))
    assert proc.returncode == 2 and "is not a drawing of an earlier prediction" in proc.stderr
    assert (parent / "x.jpg").read_bytes() == b"the user's own x.jpg" and not (parent / "detections.json").exists()
    # Predicting twice into the same folder replaces its own drawings.
    out = tmp_path / "pred"
    first = predict_images(predictor, [inputs[0]], str(out))
    again = predict_images(predictor, [inputs[0]], str(out))
    assert again["images"] == first["images"] and sorted(os.listdir(out)) == ["detections.json", "x.jpg"]
    # A detections.json this tool did not write is not replaced either.
    other = tmp_path / "other"
    other.mkdir()
    (other / "detections.json").write_text('{"mine": 1}')
    with pytest.raises(ValueError, match="holds a detections.json that tools/predict.py did not write"):
        predict_images(predictor, [inputs[0]], str(other))
    assert (other / "detections.json").read_text() == '{"mine": 1}'


def test_predict_to_an_existing_file_says_it_is_not_a_folder(demo_root, tmp_path):
    """A vague one: an existing file as --output gave a raw FileExistsError."""
    _, _, path = _saved_model(tmp_path)
    image = os.path.join(demo_root, "val", sorted(os.listdir(os.path.join(demo_root, "val")))[0])
    target = tmp_path / "out.jpg"
    target.write_bytes(b"not a folder")
    proc = _predict_tool("--weights", path, "--input", image, "--output", str(target))
    assert proc.returncode == 2 and f"--output {target} is a file, not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr and target.read_bytes() == b"not a folder"


def test_predict_refuses_weights_holding_nan(demo_root, tmp_path):
    """Issue 27 #8: --weights a checkpoint with NaN weights wrote zero detections and said "Wrote 2
    drawings (0 skipped)", without a warning."""
    cfg, model, _ = _saved_model(tmp_path)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["roi_heads.box_predictor.cls_score.weight"][0, 0] = float("nan")
    bad = tmp_path / "nan.pth"
    torch.save({"model": state}, bad)
    image = os.path.join(demo_root, "val", sorted(os.listdir(os.path.join(demo_root, "val")))[0])
    proc = _predict_tool("--weights", str(bad), "--input", image, "--output", str(tmp_path / "pred"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{bad}: 1 tensors hold NaN or inf (roi_heads.box_predictor.cls_score.weight)" in proc.stderr
    assert "Wrote" not in proc.stdout + proc.stderr and not (tmp_path / "pred").exists()
