"""Checkpoints that would be lost or misreported (issue 27): weights holding NaN (as an init, evaluated,
converted), a conversion written over its own input or over a run's checkpoint, and a pre-training run of
another method given to continue from. The NaN files are made here from a real demo detector (one
tensor set to NaN) and the messages are checked for the file, the tensor and what to do."""

import os
import subprocess
import sys

import pytest
import torch

from vitdet_bench.checkpoint import Checkpointer, CheckpointError, convert_backbone_file, convert_method_file
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.engine import build_model, default_argument_parser, main, resolve_num_classes

from helpers import DEMO_CONFIG, FAST_OVERRIDES, REPO

BAD_KEY = "roi_heads.box_predictor.cls_score.weight"


def run_main(*argv):
    args = default_argument_parser().parse_args(["--config-file", DEMO_CONFIG, *argv])
    return main(args)


@pytest.fixture(scope="module")
def detector_files(tmp_path_factory, demo_root):
    """A demo detector's checkpoint as a finished run writes it, and a copy with one NaN."""
    folder = tmp_path_factory.mktemp("detector")
    cfg = LazyConfig.load(DEMO_CONFIG)
    resolve_num_classes(cfg)
    torch.manual_seed(0)
    model = build_model(cfg)
    good = Checkpointer(model, str(folder / "run")).save("model_final", iteration=3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state[BAD_KEY][1, 2] = float("nan")
    bad = str(folder / "nan.pth")
    torch.save({"model": state, "iteration": 3}, bad)
    return good, bad


def _names_the_nan(message, path):
    assert f"{path}: 1 tensors hold NaN or inf ({BAD_KEY})" in message, message
    assert "Use an earlier checkpoint of that run" in message


def test_nan_init_weights_are_refused_naming_the_file_not_the_data(detector_files, tmp_path):
    """A vague one: NaN init weights ran the first step and were blamed on "the data or optimizer.lr"."""
    _, bad = detector_files
    out = tmp_path / "run"
    with pytest.raises(CheckpointError) as e:
        run_main(*FAST_OVERRIDES, "train.max_iter=2", "train.eval_period=-1", f"train.init_checkpoint={bad}",
                 f"train.output_dir={out}")
    _names_the_nan(str(e.value), bad)
    assert "optimizer.lr" not in str(e.value)
    assert not [f for f in os.listdir(out) if f.endswith(".pth") or f == "metrics.json"]


def test_eval_only_of_nan_weights_fails_instead_of_reporting_ap_nan(detector_files, tmp_path):
    """A vague one: --eval-only of a checkpoint with NaN weights exited 0 with AP nan."""
    _, bad = detector_files
    out = tmp_path / "eval"
    with pytest.raises(CheckpointError) as e:
        run_main("--eval-only", *FAST_OVERRIDES, f"train.init_checkpoint={bad}", f"train.output_dir={out}")
    _names_the_nan(str(e.value), bad)
    assert not (out / "inference").exists()


def _convert_tool(*argv):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_checkpoint.py"), *argv],
                          capture_output=True, text=True, cwd=REPO)


def test_converting_nan_weights_is_refused_and_writes_nothing(detector_files, tmp_path):
    """A vague one: converting a NaN checkpoint warned nothing (and wrote the NaN into the output)."""
    _, bad = detector_files
    out = tmp_path / "out.pkl"
    proc = _convert_tool("--to", "detectron2", "--config-file", DEMO_CONFIG, bad, str(out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{BAD_KEY}), so it was not converted" in proc.stderr and not out.exists()
    # A backbone file and a pre-training run's checkpoint, the same.
    vit = {k: v.clone() for k, v in torch.load(bad, weights_only=True)["model"].items()
           if k.startswith("backbone.bottom_up.net.")}
    vit["backbone.bottom_up.net.blocks.0.attn.qkv.weight"][0, 0] = float("inf")
    backbone = tmp_path / "vit.pth"
    torch.save({"model": vit}, backbone)
    with pytest.raises(CheckpointError, match="blocks.0.attn.qkv.weight\\), so it was not converted"):
        convert_backbone_file(str(backbone), str(tmp_path / "export.pth"), "vitdet")
    run = {"encoder.vit." + k[len("backbone.bottom_up.net."):]: v for k, v in vit.items()}
    method = tmp_path / "model_final.pth"
    torch.save({"model": run}, method)
    with pytest.raises(CheckpointError, match="so it was not converted"):
        convert_method_file(str(method), str(tmp_path / "official.pth"), "mae")
    assert sorted(os.listdir(tmp_path)) == ["model_final.pth", "vit.pth"]


def test_a_conversion_never_writes_over_its_input_or_a_runs_checkpoint(detector_files, tmp_path):
    """Issue 27 #9: --to detectron2 ... X/model_final.pth X/model_final.pth overwrote the run's checkpoint
    with the converted file."""
    good, _ = detector_files
    before = open(good, "rb").read()
    proc = _convert_tool("--to", "detectron2", "--config-file", DEMO_CONFIG, good, good)
    assert proc.returncode == 1 and f"The output {good} is the input {good}" in proc.stderr
    assert "Give another output file" in proc.stderr and open(good, "rb").read() == before
    # Another checkpoint of the run (here: the periodic one next to model_final.pth) is not replaced either.
    periodic = os.path.join(os.path.dirname(good), "model_0000001.pth")
    open(periodic, "wb").write(b"the run's periodic checkpoint")
    proc = _convert_tool("--to", "detectron2", "--config-file", DEMO_CONFIG, good, periodic)
    assert proc.returncode == 1 and f"{periodic} is a checkpoint of the run in" in proc.stderr
    assert open(periodic, "rb").read() == b"the run's periodic checkpoint"
    os.remove(periodic)
    proc = _convert_tool("--to", "detectron2", "--config-file", DEMO_CONFIG, good, str(tmp_path / "d2.pkl"))
    assert proc.returncode == 0 and (tmp_path / "d2.pkl").is_file(), proc.stderr[-2000:]


def test_a_folder_given_as_a_checkpoint_says_so(detector_files, tmp_path):
    """A vague one: a folder given as a checkpoint was reported as "does not exist"."""
    good, _ = detector_files
    folder = os.path.dirname(good)
    proc = _convert_tool("--from", "vitdet", folder, str(tmp_path / "export.pth"))
    assert proc.returncode == 1 and f"Checkpoint {folder} is a folder, not a file (it holds model_final.pth)" \
        in proc.stderr


def test_continuing_mae_from_a_mocov3_run_names_what_does_not_fit(tmp_path):
    """A vague one: continuing MAE from a MoCo v3 run's model_final.pth said the file had "no ViT blocks"
    while listing encoder.vit.blocks.0.*. The run is this project's own layout: its encoder loads by name,
    and what has no place in MAE (the momentum encoder, the heads) and what is missing (the decoder) is
    named, with what to do."""
    from vitdet_bench.checkpoint import load_init_checkpoint

    moco = instantiate(LazyConfig.load(os.path.join(REPO, "projects/MoCoV3/configs/mocov3_vit_tiny_demo.py")).model)
    path = tmp_path / "model_final.pth"
    torch.save({"model": moco.state_dict(), "iteration": 1}, path)
    mae = instantiate(LazyConfig.load(os.path.join(REPO, "projects/MAE/configs/mae_vit_tiny_demo.py")).model)
    with pytest.raises(CheckpointError) as e:
        load_init_checkpoint(mae, str(path))
    msg = str(e.value)
    assert "no ViT blocks" not in msg
    assert "have no place in the mae model" in msg and "momentum_encoder" in msg
    assert "train.init_strict=False" in msg
    report = load_init_checkpoint(mae, str(path), strict=False)
    assert "encoder.vit.blocks.0.attn.qkv.weight" in report.loaded
    torch.testing.assert_close(mae.encoder.vit.blocks[0].attn.qkv.weight, moco.encoder.vit.blocks[0].attn.qkv.weight)
