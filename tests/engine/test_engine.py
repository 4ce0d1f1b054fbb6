"""Engine end to end on the demo config: outputs, loss, resume equality, NaN stop, atomic saves,
bad resume state, eval-only, and a 2-process Gloo run."""

import json
import os
import subprocess
import sys

import pytest
import torch

from vitdet_bench.checkpoint import Checkpointer, CheckpointError
from vitdet_bench.engine import HookBase, PeriodicCheckpointer, SimpleTrainer, default_argument_parser, main

from helpers import DEMO_CONFIG, FAST_OVERRIDES, REPO


def run_main(*argv):
    args = default_argument_parser().parse_args(["--config-file", DEMO_CONFIG, *argv])
    return main(args)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run_a"))
    run_main(*FAST_OVERRIDES, "train.max_iter=30", "train.checkpointer.period=15", "train.eval_period=-1",
             f"train.output_dir={out}")
    return out


def test_output_directory_has_detectron2_files(trained_run):
    files = set(os.listdir(trained_run))
    assert {"config.yaml", "log.txt", "metrics.json", "last_checkpoint", "model_0000014.pth",
            "model_final.pth"} <= files
    assert any(f.startswith("events.out.tfevents") for f in files)
    assert open(os.path.join(trained_run, "last_checkpoint")).read().strip() == "model_final.pth"
    lines = [json.loads(line) for line in open(os.path.join(trained_run, "metrics.json"))]
    for key in ("iteration", "total_loss", "loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc",
                "lr", "time", "data_time", "eta_seconds", "max_mem_mb"):
        assert key in lines[-1], key
    assert [x["iteration"] for x in lines] == [4, 9, 14, 19, 24, 29]


def test_loss_goes_down(trained_run):
    lines = [json.loads(line) for line in open(os.path.join(trained_run, "metrics.json"))]
    assert lines[-1]["total_loss"] < 0.85 * lines[0]["total_loss"]


def test_resume_reproduces_an_uninterrupted_run(trained_run, tmp_path):
    # An interrupted run has, on disk, the periodic checkpoint of iteration 15 and nothing after it.
    out = str(tmp_path)
    state = torch.load(os.path.join(trained_run, "model_0000014.pth"), weights_only=True)
    torch.save(state, os.path.join(out, "model_0000014.pth"))
    open(os.path.join(out, "last_checkpoint"), "w").write("model_0000014.pth")
    run_main("--resume", *FAST_OVERRIDES, "train.max_iter=30", "train.checkpointer.period=15",
             "train.eval_period=-1", f"train.output_dir={out}")
    a = torch.load(os.path.join(trained_run, "model_final.pth"), weights_only=True)["model"]
    b = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)["model"]
    assert a.keys() == b.keys()
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].numel())
    assert diff < 1e-5


def test_resume_with_empty_last_checkpoint_names_the_file(tmp_path):
    (tmp_path / "last_checkpoint").write_text("")
    with pytest.raises(CheckpointError, match=r"last_checkpoint is empty"):
        run_main("--resume", *FAST_OVERRIDES, "train.max_iter=2", f"train.output_dir={tmp_path}")


def test_resume_with_corrupt_checkpoint_names_the_file(tmp_path):
    (tmp_path / "model_0000009.pth").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "last_checkpoint").write_text("model_0000009.pth")
    with pytest.raises(CheckpointError, match=r"model_0000009.pth could not be loaded"):
        run_main("--resume", *FAST_OVERRIDES, "train.max_iter=2", f"train.output_dir={tmp_path}")


def test_resume_when_last_checkpoint_names_a_missing_file(tmp_path):
    (tmp_path / "last_checkpoint").write_text("model_0000099.pth")
    with pytest.raises(CheckpointError, match=r"names model_0000099.pth, but .* does not exist"):
        run_main("--resume", *FAST_OVERRIDES, "train.max_iter=2", f"train.output_dir={tmp_path}")


def test_eval_only_writes_results_and_ap_table(trained_run, tmp_path, capsys):
    results = run_main("--eval-only", f"train.init_checkpoint={trained_run}/model_final.pth",
                       f"train.output_dir={tmp_path}", "dataloader.test.dataset.names=demo_minival")
    assert set(results) == {"bbox", "segm"} and "AP50" in results["bbox"]
    assert os.path.isfile(tmp_path / "inference" / "coco_instances_results.json")
    assert "| task" in open(tmp_path / "log.txt").read()


# ------------------------------------------------------------------ trainer-level behaviour


class _ToyModel(torch.nn.Module):
    """Returns a NaN loss from iteration ``nan_at`` on."""

    def __init__(self, nan_at):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))
        self.calls, self.nan_at = 0, nan_at

    def forward(self, batch):
        loss = (self.w * batch).sum() ** 2
        self.calls += 1
        if self.calls > self.nan_at:
            loss = loss * float("nan")
        return {"loss_a": loss, "loss_b": torch.ones(())}


def test_nan_loss_stops_with_iteration_and_terms_and_keeps_last_checkpoint(tmp_path):
    model = _ToyModel(nan_at=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = iter([torch.ones(3)] * 100)
    trainer = SimpleTrainer(model, data, opt)
    ckpt = Checkpointer(model, str(tmp_path), optimizer=opt)
    trainer.register_hooks([PeriodicCheckpointer(ckpt, period=2, max_iter=10)])
    with pytest.raises(FloatingPointError) as e:
        trainer.train(0, 10)
    assert "iteration 3" in str(e.value) and "loss_a=nan" in str(e.value) and "loss_b=1" in str(e.value)
    assert not os.path.exists(tmp_path / "model_final.pth")
    state = torch.load(tmp_path / "model_0000001.pth", weights_only=True)
    assert torch.isfinite(state["model"]["w"]).all() and torch.isfinite(model.w).all()


def test_a_crash_during_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 2)
    ckpt = Checkpointer(model, str(tmp_path))
    ckpt.save("model_0000001", iteration=1)
    before = (tmp_path / "model_0000001.pth").read_bytes()

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"partial bytes")
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save("model_0000001", iteration=3)
    assert (tmp_path / "model_0000001.pth").read_bytes() == before
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]


def test_hooks_run_in_documented_order():
    calls = []

    class Recorder(HookBase):
        def before_train(self):
            calls.append("before_train")

        def before_step(self):
            calls.append(f"before_step{self.trainer.iter}")

        def after_backward(self):
            calls.append("after_backward")

        def after_step(self):
            calls.append(f"after_step{self.trainer.iter}")

        def after_train(self):
            calls.append(f"after_train{self.trainer.iter}")

    model = _ToyModel(nan_at=100)
    trainer = SimpleTrainer(model, iter([torch.ones(3)] * 5), torch.optim.SGD(model.parameters(), lr=0.1))
    trainer.register_hooks([Recorder()])
    trainer.train(0, 2)
    assert calls == ["before_train", "before_step0", "after_backward", "after_step0", "before_step1",
                     "after_backward", "after_step1", "after_train2"]


def test_two_process_gloo_run(tmp_path):
    out = str(tmp_path / "ddp")
    cmd = [sys.executable, os.path.join(REPO, "tools", "lazyconfig_train_net.py"), "--config-file", DEMO_CONFIG,
           "--num-gpus", "2", *FAST_OVERRIDES, "train.max_iter=4", "train.checkpointer.period=100",
           "train.eval_period=0", "train.log_period=2", f"train.output_dir={out}"]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = open(os.path.join(out, "log.txt")).read()
    assert "Rank 0 of 2" in log and "| bbox" in log
    assert os.path.isfile(os.path.join(out, "log.txt.rank1"))
    # Evaluation gathered all 24 validation images from both ranks.
    results = json.load(open(os.path.join(out, "inference", "coco_instances_results.json")))
    assert len(results) > 0
    lines = [json.loads(line) for line in open(os.path.join(out, "metrics.json"))]
    assert lines[-1]["iteration"] == 3 and "bbox/AP" in lines[-1]


def test_gradient_accumulation_equals_one_large_batch():
    """Two micro-batches of 2 with grad_accum_steps=2 take the same optimizer steps as batches of 4."""
    import itertools

    from vitdet_bench.engine import SimpleTrainer

    torch.manual_seed(0)
    samples = [{"x": torch.randn(3), "y": torch.randn(())} for _ in range(8)]

    class Regressor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 1)

        def forward(self, batch):
            x = torch.stack([b["x"] for b in batch])
            y = torch.stack([b["y"] for b in batch])
            return {"loss_mse": (self.fc(x).squeeze(1) - y).pow(2).mean()}

    def run(batch_size, accum):
        torch.manual_seed(1)
        model = Regressor()
        loader = (samples[i:i + batch_size] for i in itertools.cycle(range(0, 8, batch_size)))
        trainer = SimpleTrainer(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), grad_accum_steps=accum)
        trainer.train(0, 3)
        return model.fc.weight.detach().clone(), trainer

    big, _ = run(4, 1)
    small, trainer = run(2, 2)
    torch.testing.assert_close(small, big, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="grad_accum_steps must be >= 1"):
        SimpleTrainer(Regressor(), [], torch.optim.SGD(Regressor().parameters(), lr=0.1), grad_accum_steps=0)


def test_num_classes_comes_from_the_data_or_must_agree_with_it(demo_root):
    from vitdet_bench.config import LazyConfig
    from vitdet_bench.engine import resolve_num_classes

    cfg = LazyConfig.load(DEMO_CONFIG)
    assert cfg.model.num_classes is None
    resolve_num_classes(cfg)
    assert cfg.model.num_classes == 4  # the demo's circle / square / triangle / star
    cfg.model.num_classes = 80
    with pytest.raises(ValueError,
                       match=r"model.num_classes=80 but dataset 'demo_train' \(.*train.json\) has 4 classes"):
        resolve_num_classes(cfg)
    # Supervised pre-training fills it from the images' classes through the same rule.
    from vitdet_bench.pretrain.engine import _fill_num_classes

    sup = LazyConfig.load(os.path.join(REPO, "projects/Supervised/configs/supervised_vit_tiny_demo.py"))
    sup.dataloader.train.dataset.size = 8
    sup.model.num_classes = None
    _fill_num_classes(sup)
    assert sup.model.num_classes == 4


def test_eval_only_refuses_a_backbone_and_writes_nothing(trained_run, tmp_path):
    """A pre-trained backbone loads into a detector with the neck and heads at random values
    (missing as expected), so --eval-only would report the AP of noise: it stops, naming the file."""
    from vitdet_bench.checkpoint import safe_torch_load, save_backbone_export

    state = safe_torch_load(f"{trained_run}/model_final.pth")["model"]
    prefix = "backbone.bottom_up.net."
    backbone = str(tmp_path / "backbone.pth")
    save_backbone_export({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, backbone,
                         {"method": "supervised", "patch_size": 16, "image_size": 224})
    out = tmp_path / "eval"
    with pytest.raises(CheckpointError, match=r"--eval-only evaluates a trained detector, but .*backbone.pth is a "
                                              r"pre-trained backbone \('vitdet_bench' format\)"):
        run_main("--eval-only", f"train.init_checkpoint={backbone}", f"train.output_dir={out}",
                 "dataloader.test.dataset.names=demo_minival")
    assert not (out / "config.yaml").exists() and not (out / "inference").exists()
    with pytest.raises(ValueError, match="--eval-only needs train.init_checkpoint"):
        run_main("--eval-only", f"train.output_dir={tmp_path / 'none'}")
