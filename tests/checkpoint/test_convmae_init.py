"""The ConvViT detector starts from a ConvMAE / FastConvMAE export through ``train.init_checkpoint`` (issue 27,
integration defect 1): the path the benchmark runner uses for the ConvMAE rows of
configs/benchmark/demo_seeds.py and coco_seeds.py. It stopped with "MaskRCNN contains no vitdet_bench ViT".

End to end through the tools' entry points: tools/pretrain_net.py (``run_pretrain``) writes a real tiny export
in two iterations, tools/lazyconfig_train_net.py (``run``) fine-tunes configs/demo/bench/convvit_*.py from it
in two. The reference is the export itself: every tensor it holds is in the detector as written."""

import os

import pytest
import torch

from vitdet_bench.checkpoint import CheckpointError, load_init_checkpoint, safe_torch_load, save_backbone_export
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.engine import run
from vitdet_bench.pretrain.engine import run_pretrain

from helpers import REPO

METHODS = {
    "convmae": ("projects/ConvMAE/configs/convmae_convvit_tiny_demo.py", "configs/demo/bench/convvit_convmae.py"),
    "fastconvmae": ("projects/FastConvMAE/configs/fastconvmae_convvit_tiny_demo.py",
                    "configs/demo/bench/convvit_fastconvmae.py"),
}
PRETRAIN = ["train.max_iter=2", "lr_multiplier.warmup_iters=1", "dataloader.train.dataset.size=16",
            "dataloader.train.total_batch_size=2", "train.log_period=1"]
FINETUNE = ["train.max_iter=2", "train.eval_period=-1", "train.log_period=1", "dataloader.train.total_batch_size=2",
            "lr_multiplier.warmup_iters=1", "train.checkpointer.period=0"]


def _detector(config):
    cfg = LazyConfig.load(os.path.join(REPO, config))
    cfg.model.num_classes = 4
    return instantiate(cfg.model)


@pytest.fixture(scope="module")
def exports(tmp_path_factory, demo_root):
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for name, (config, _) in METHODS.items():
        run_pretrain(["--config-file", os.path.join(REPO, config), *PRETRAIN, f"train.output_dir={root / name}"])
        out[name] = str(root / name / "backbone_final.pth")
    return out


@pytest.mark.parametrize("name", list(METHODS))
def test_the_convvit_detector_fine_tunes_from_a_convmae_export(exports, name, tmp_path):
    export = safe_torch_load(exports[name])
    assert export["meta"]["method"] == name and export["meta"]["backbone"] == "convvit"
    out = tmp_path / "det"
    run(["--config-file", os.path.join(REPO, METHODS[name][1]), *FINETUNE, f"train.init_checkpoint={exports[name]}",
         f"train.output_dir={out}"])
    assert os.path.isfile(out / "model_final.pth")
    log = open(out / "log.txt").read()
    assert exports[name] in log and "0 missing UNEXPECTEDLY, 0 checkpoint tensors unused" in log
    # The load itself, on a fresh detector: every exported tensor is in the ConvViT as written, nothing
    # is missing that the export should hold, and the neck and heads keep their initial values.
    detector = _detector(METHODS[name][1])
    heads = {k: v.clone() for k, v in detector.state_dict().items() if not k.startswith("backbone.bottom_up.")}
    report = load_init_checkpoint(detector, exports[name])
    assert report.ok and report.origin == name and not report.missing_unexpected, report.summary()
    own = detector.state_dict()
    assert sorted(report.loaded) == sorted("backbone.bottom_up." + k for k in export["model"])
    for k, v in export["model"].items():
        assert torch.equal(own["backbone.bottom_up." + k], v), k
    assert all(torch.equal(own[k], v) for k, v in heads.items())


def test_an_official_convmae_file_and_a_plain_vit_export_through_init(exports, tmp_path):
    """The official layout (decoder and fusion convs beside the encoder) loads with those dropped; a plain
    ViT export stops with the reason (no convolution stages), before anything is loaded."""
    export = safe_torch_load(exports["convmae"])
    official = dict(export["model"])
    official.update({"decoder_embed.weight": torch.zeros(64, 96), "mask_token": torch.zeros(1, 1, 64),
                     "stage1_output_decode.weight": torch.zeros(96, 32, 4, 4)})
    path = tmp_path / "convmae_official.pth"
    torch.save({"model": official, "epoch": 1599}, path)
    detector = _detector(METHODS["convmae"][1])
    report = load_init_checkpoint(detector, str(path))
    assert report.format == "convmae" and report.ok, report.summary()
    assert report.dropped == {"ConvMAE decoder (pre-training only)": 2,
                              "ConvMAE multi-scale fusion into the decoder (pre-training only)": 1}
    vit = tmp_path / "vit_export.pth"
    save_backbone_export({"patch_embed.proj.weight": torch.zeros(96, 3, 16, 16),
                          "blocks.0.attn.qkv.weight": torch.zeros(288, 96)}, str(vit), {"method": "mae"})
    before = {k: v.clone() for k, v in detector.state_dict().items()}
    with pytest.raises(CheckpointError, match="plain ViT checkpoint .* no convolution stages"):
        load_init_checkpoint(detector, str(vit))
    assert all(torch.equal(detector.state_dict()[k], v) for k, v in before.items())
