"""Faults and bad inputs never corrupt a run, a checkpoint or a user's files, and never pass in silence
(issue 20): the NaN guard over loss and gradients, run directories, resume clean-up, fatal errors in
log.txt, truncated images, and messages that name the key, file or dataset.

Each test builds the fault itself (a toy model whose gradient is NaN, a copied run directory cut back
to a checkpoint, a JPEG cut in half) and checks the outcome against what an uninterrupted, fault-free
run gives or against the files on disk, not against the code's own description of itself.
"""

import errno
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from vitdet_bench.checkpoint import Checkpointer, CheckpointError
from vitdet_bench.engine import HookBase, PeriodicCheckpointer, SimpleTrainer, default_argument_parser, main

from helpers import DEMO_CONFIG, FAST_OVERRIDES, REPO
from helpers.runs import fake_finished_run

TINY = [*FAST_OVERRIDES, "train.eval_period=-1", "train.log_period=1"]


def run_main(*argv, extra_hooks=None):
    args = default_argument_parser().parse_args(["--config-file", DEMO_CONFIG, *argv])
    return main(args, extra_hooks=extra_hooks)


def _digest(path) -> str:
    return hashlib.sha1(open(path, "rb").read()).hexdigest()


def _all_finite(path) -> bool:
    data = torch.load(path, map_location="cpu", weights_only=True)
    tensors = [v for part in ("model", "optimizer") for v in _flat(data.get(part))]
    return all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())


def _flat(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _flat(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _flat(v)


def _log_tail(out, n=3) -> str:
    return "".join(open(os.path.join(out, "log.txt")).readlines()[-n:])


# ------------------------------------------------------------------ 1. NaN / inf guard


class _SqrtModel(torch.nn.Module):
    """loss = (w - 2)^2, plus sqrt(0 * w) from call ``bad_at`` on: the loss stays finite (0 is added)
    but d sqrt(0 * w) / dw = 0 * inf = NaN, so the gradient is not."""

    def __init__(self, bad_at):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))
        self.calls, self.bad_at = 0, bad_at

    def forward(self, batch):
        loss = ((self.w - 2) ** 2).sum()
        if self.calls >= self.bad_at:
            loss = loss + torch.sqrt(self.w * 0).sum()
        self.calls += 1
        return {"loss_sq": loss}


def test_finite_loss_with_nan_gradient_stops_before_the_optimizer_step(tmp_path):
    model = _SqrtModel(bad_at=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = SimpleTrainer(model, iter([None] * 100), opt)
    ckpt = Checkpointer(model, str(tmp_path), optimizer=opt)
    trainer.register_hooks([PeriodicCheckpointer(ckpt, period=1, max_iter=10)])
    # By hand: two SGD steps with momentum on (w - 2)^2 from w = 1: grad -2, v = -2, w = 1.2;
    # grad -1.6, v = 0.9 * -2 - 1.6 = -3.4, w = 1.2 + 0.34 = 1.54.
    with pytest.raises(FloatingPointError) as e:
        trainer.train(0, 10)
    msg = str(e.value)
    assert "iteration 2" in msg and "gradients are not" in msg and "1 parameters, e.g. w" in msg
    torch.testing.assert_close(model.w.detach(), torch.full((3,), 1.54))
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth")) == ["model_0000000.pth", "model_0000001.pth"]
    assert all(_all_finite(tmp_path / f) for f in ("model_0000000.pth", "model_0000001.pth"))


def test_checkpointer_refuses_to_write_nan_and_names_the_tensors(tmp_path):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    ckpt = Checkpointer(model, str(tmp_path), optimizer=opt)
    ckpt.save("model_0000001", iteration=1)
    before = _digest(tmp_path / "model_0000001.pth")
    with torch.no_grad():
        model.bias[0] = float("nan")
    with pytest.raises(FloatingPointError) as e:
        ckpt.save("model_0000003", iteration=3)
    assert "model_0000003.pth" in str(e.value) and "model.bias" in str(e.value) and "1 model tensors" in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert _digest(tmp_path / "model_0000001.pth") == before


def test_last_clean_checkpoint_skips_a_nan_file_written_elsewhere(tmp_path):
    model = torch.nn.Linear(2, 2)
    ckpt = Checkpointer(model, str(tmp_path))
    assert "No checkpoint has been written" in ckpt.clean_checkpoint_note()
    ckpt.save("model_0000001", iteration=1)
    assert "model_0000001.pth, is clean" in ckpt.clean_checkpoint_note()
    # A file from an older version (or copied in) that holds NaN, named by last_checkpoint.
    state = {k: torch.full_like(v, float("nan")) for k, v in model.state_dict().items()}
    torch.save({"model": state, "iteration": 3}, tmp_path / "model_0000003.pth")
    (tmp_path / "last_checkpoint").write_text("model_0000003.pth")
    assert ckpt.last_clean_checkpoint() == str(tmp_path / "model_0000001.pth")
    note = ckpt.clean_checkpoint_note()
    assert "last clean checkpoint is" in note and "model_0000001.pth" in note and "names another file" in note


def test_nan_run_stops_names_a_clean_checkpoint_and_resumes_from_it(tmp_path):
    """The issue's case: a large lr gives a finite loss with NaN gradients (at iteration 2 here);
    every checkpoint on disk stays finite, the message names the last one, and it resumes."""
    out = str(tmp_path)
    with pytest.raises(FloatingPointError) as e:
        run_main(*TINY, "optimizer.lr=1e3", "lr_multiplier.warmup_iters=1", "train.checkpointer.period=1",
                 "train.max_iter=6", f"train.output_dir={out}")
    checkpoints = sorted(f for f in os.listdir(out) if f.endswith(".pth"))
    assert checkpoints and all(_all_finite(os.path.join(out, f)) for f in checkpoints)
    last = open(os.path.join(out, "last_checkpoint")).read().strip()
    assert f"The last checkpoint, {os.path.join(out, last)}, is clean" in str(e.value)
    # 6. The error is the last thing in log.txt.
    tail = _log_tail(out)
    assert "Training failed: FloatingPointError: Non-finite training at iteration" in tail and last in tail
    # Resuming from it loads and replays the same step exactly: it stops at the same iteration, with the
    # same gradients (the NaN checkpoint failed at once instead).
    with pytest.raises(FloatingPointError) as again:
        run_main("--resume", *TINY, "optimizer.lr=1e3", "lr_multiplier.warmup_iters=1", "train.checkpointer.period=1",
                 "train.max_iter=6", f"train.output_dir={out}")
    assert str(again.value).split("\n")[0] == str(e.value).split("\n")[0]
    assert open(os.path.join(out, "last_checkpoint")).read().strip() == last


def test_nan_before_any_checkpoint_says_there_is_none(tmp_path):
    with pytest.raises(FloatingPointError) as e:
        run_main(*TINY, "optimizer.lr=1e6", "lr_multiplier.warmup_iters=1", "train.checkpointer.period=100",
                 "train.max_iter=6", f"train.output_dir={tmp_path}")
    assert "No checkpoint has been written" in str(e.value) and "is clean" not in str(e.value)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".pth")]


_DDP_SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {repo!r})
    from vitdet_bench.engine import SimpleTrainer, create_ddp_model, launch
    from vitdet_bench.utils import comm

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))
            self.calls = 0

        def forward(self, batch):
            self.calls += 1
            loss = ((self.w - 2) ** 2).sum()
            if comm.get_rank() == 1 and self.calls == 3:  # iteration 1, first (unsynced) micro-batch, rank 1
                loss = loss * float("nan")
            return {{"loss_sq": loss}}

    def worker():
        model = M()
        trainer = SimpleTrainer(create_ddp_model(model), iter([None] * 100),
                                torch.optim.SGD(model.parameters(), lr=0.1), grad_accum_steps=2)
        try:
            trainer.train(0, 5)
        except FloatingPointError as e:
            with open(f"{out}/rank{{comm.get_rank()}}.txt", "w") as f:
                f.write(f"RANK{{comm.get_rank()}} {{e}} W={{model.w.tolist()}}")

    if __name__ == "__main__":
        launch(worker, 2)
""")


def test_nan_on_one_ddp_rank_stops_every_rank(tmp_path):
    """Rank 1's loss turns NaN in one micro-batch: both ranks stop at the same iteration (none hangs
    in a collective) before the step, with equal, finite weights."""
    script = tmp_path / "ddp_nan.py"
    script.write_text(_DDP_SCRIPT.format(repo=REPO, out=tmp_path))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    reports = [tmp_path / f"rank{r}.txt" for r in (0, 1)]
    assert all(p.is_file() for p in reports), proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [p.read_text() for p in reports]
    assert "at iteration 1 (rank 0 of 2)" in lines[0] and "another rank's loss" in lines[0]
    assert "at iteration 1 (rank 1 of 2)" in lines[1] and "loss_sq=nan" in lines[1] and "micro-batch 1 of 2" in lines[1]
    # One SGD step on (w - 2)^2 from w = 1 (gradient -2): w = 1.2 on both ranks.
    assert lines[0].split("W=")[1] == lines[1].split("W=")[1] == str([1.2000000476837158] * 3)


# ------------------------------------------------------------------ 3. run directories


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("finished"))
    run_main(*TINY, "train.max_iter=4", "train.checkpointer.period=2", f"train.output_dir={out}")
    return out


def _snapshot(out):
    return {f: _digest(os.path.join(out, f)) for f in sorted(os.listdir(out)) if os.path.isfile(os.path.join(out, f))}


def test_a_finished_run_is_not_replaced_without_resume_or_overwrite(finished_run):
    from vitdet_bench.engine.run_dir import RunDirError

    before = _snapshot(finished_run)
    with pytest.raises(RunDirError) as e:
        run_main(*TINY, "train.max_iter=4", f"train.output_dir={finished_run}")
    assert "already holds a finished run (model_final.pth)" in str(e.value)
    assert "--resume" in str(e.value) and "--overwrite" in str(e.value)
    assert _snapshot(finished_run) == before


def test_overwrite_replaces_the_run_and_keeps_other_files(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    (out / "notes.txt").write_text("mine")
    run_main("--overwrite", *TINY, "train.max_iter=2", "train.checkpointer.period=100", f"train.output_dir={out}")
    rows = [json.loads(line) for line in open(out / "metrics.json")]
    assert [r["iteration"] for r in rows] == [0, 1]  # only the new run, not appended to the old one
    assert sorted(f for f in os.listdir(out) if f.endswith(".pth")) == ["model_final.pth"]
    assert (out / "notes.txt").read_text() == "mine"
    assert sum(f.startswith("events.out.tfevents") for f in os.listdir(out)) == 1


def test_a_wrong_type_override_names_the_key_and_writes_nothing(finished_run):
    before = _snapshot(finished_run)
    with pytest.raises(ValueError) as e:
        run_main("--resume", *TINY, "train.max_iter=abc", f"train.output_dir={finished_run}")
    assert "train.max_iter" in str(e.value) and "an integer" in str(e.value) and "'abc'" in str(e.value)
    assert _snapshot(finished_run) == before


def test_resume_with_another_model_is_refused_and_writes_nothing(finished_run):
    from vitdet_bench.engine.run_dir import RunDirError

    before = _snapshot(finished_run)
    with pytest.raises(RunDirError) as e:
        run_main("--resume", *TINY, "train.max_iter=6", "model.backbone.bottom_up.net.embed_dim=48",
                 f"train.output_dir={finished_run}")
    assert "model.backbone.bottom_up.net.embed_dim: 96 -> 48" in str(e.value)
    assert _snapshot(finished_run) == before


def test_a_config_error_is_found_before_anything_is_written(tmp_path):
    from vitdet_bench.config import InstantiationError

    out = tmp_path / "run"
    with pytest.raises(InstantiationError) as e:
        run_main(*TINY, "+model.backbone.bottom_up.net.embd_dim=48", f"train.output_dir={out}")
    assert "model.backbone.bottom_up.net" in str(e.value) and "did you mean 'embed_dim'" in str(e.value)
    assert not out.exists()


def test_resume_after_a_kill_between_checkpoints_leaves_one_history(finished_run, tmp_path):
    """A kill after iteration 3 with the last checkpoint at iteration 1 (and one during a save):
    metrics.json and the event files are cut back to the checkpoint, the .tmp files go, and the
    resumed run ends with the weights of the uninterrupted one."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    out = tmp_path / "killed"
    shutil.copytree(finished_run, out)
    os.remove(out / "model_final.pth")
    (out / "last_checkpoint").write_text("model_0000001.pth")
    with open(out / "metrics.json", "a") as f:
        f.write('{"iteration": 4, "total_lo')  # cut by the kill
    (out / "model_0000003.pth.tmp.4242").write_bytes(b"half a checkpoint")
    (out / "last_checkpoint.tmp.4242").write_text("model_0000003.pth")
    run_main("--resume", *TINY, "train.max_iter=4", "train.checkpointer.period=2", f"train.output_dir={out}")
    rows = [json.loads(line) for line in open(out / "metrics.json")]
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    assert not [f for f in os.listdir(out) if ".tmp." in f]
    steps = {}
    for name in os.listdir(out):
        if name.startswith("events.out.tfevents"):
            for ev in EventFileLoader(str(out / name)).Load():
                for v in ev.summary.value:
                    steps.setdefault(v.tag, []).append(ev.step)
    assert sorted(steps["total_loss"]) == [0, 1, 2, 3]  # the old file cut at 2, the new one from 2
    a = torch.load(os.path.join(finished_run, "model_final.pth"), weights_only=True)["model"]
    b = torch.load(out / "model_final.pth", weights_only=True)["model"]
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].numel()) < 1e-5


def test_eval_only_beside_a_run_leaves_its_files_alone(finished_run, demo_root, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    before = _snapshot(out)
    val = json.load(open(os.path.join(demo_root, "val.json")))  # two images keep the evaluation short
    val["images"] = val["images"][:2]
    val["annotations"] = [a for a in val["annotations"] if a["image_id"] in {im["id"] for im in val["images"]}]
    (tmp_path / "val2.json").write_text(json.dumps(val))
    results = run_main("--eval-only", "train.max_iter=4", f"train.init_checkpoint={out}/model_0000001.pth",
                       f"train.output_dir={out}", "dataloader.test.dataset.names=val_two_images",
                       f"+dataloader.test.dataset.json_file={tmp_path / 'val2.json'}",
                       f"+dataloader.test.dataset.image_root={os.path.join(demo_root, 'val')}")
    assert set(results) == {"bbox", "segm"}
    after = _snapshot(out)
    assert {k: v for k, v in after.items() if k != "log.txt"} == {
        **{k: v for k, v in before.items() if k != "log.txt"}, "config_eval.yaml": after["config_eval.yaml"]}
    assert len(json.load(open(out / "inference_eval" / "coco_instances_results.json"))) > 0
    assert not (out / "inference").exists()


# ------------------------------------------------------------------ 4. collection never crashes on one bad run

_BENCH = """
benchmark = dict(name="faults", output_dir="{out}", inits=dict(
    good=dict(config="{cfg}"), cut_config=dict(config="{cfg}"), bad_value=dict(config="{cfg}"),
    cut_results=dict(config="{cfg}"), cut_metrics=dict(config="{cfg}")))
"""


def test_collection_reports_every_run_when_some_files_are_cut_or_wrong(demo_root, tmp_path):
    from vitdet_bench.benchmark import Runner, load_benchmark, write_report

    bench = tmp_path / "faults.py"
    bench.write_text(_BENCH.format(out=tmp_path / "out", cfg=DEMO_CONFIG))
    spec = load_benchmark(str(bench))
    for init in spec.inits:
        fake_finished_run(spec.run_dir(init.name), demo_root)

    def cut(path, keep):
        text = open(path).read()
        open(path, "w").write(text[: int(len(text) * keep)])

    # Cut inside the test dataset's entry: what is left cannot say which ground truth the run used.
    cfg_path = os.path.join(spec.run_dir("cut_config"), "config.yaml")
    text = open(cfg_path).read()
    open(cfg_path, "w").write(text[: text.index("names:", text.index("  test:")) + 3])
    cfg_path = os.path.join(spec.run_dir("bad_value"), "config.yaml")
    text = open(cfg_path).read()
    assert "max_iter: 4\n" in text
    open(cfg_path, "w").write(text.replace("max_iter: 4\n", "max_iter: four\n"))
    cut(os.path.join(spec.run_dir("cut_results"), "inference", "coco_instances_results.json"), 0.5)
    metrics = os.path.join(spec.run_dir("cut_metrics"), "metrics.json")
    lines = open(metrics).read().splitlines()
    open(metrics, "w").write("\n".join([lines[0], lines[1][:20], *lines[2:]]) + "\n")  # a cut line mid-file

    results = {r.name: r for r in Runner(spec, progress=False).collect()}
    assert results["good"].status == "complete", results["good"].problems
    for name, file in (("cut_config", "config.yaml"), ("bad_value", "config.yaml"),
                       ("cut_results", "coco_instances_results.json"), ("cut_metrics", "metrics.json")):
        r = results[name]
        assert r.status == "partial" and any(file in p for p in r.problems), (name, r.problems)
    assert "four" in " ".join(results["bad_value"].problems)
    # The cut metrics line costs that line only: the final evaluation and the other rows stay.
    kept = results["cut_metrics"]
    assert kept.iterations == 4 and kept.metrics["bbox"]["AP"] == results["good"].metrics["bbox"]["AP"] == 10.0
    out = write_report(spec, list(results.values()), tide=True)
    assert [row[:2] for row in out["results"]] == [[n, results[n].status] for n in results]
    # TIDE for every run whose files allow it (a cut config.yaml does not say which ground truth).
    assert set(out["tide"]) == {"good", "bad_value", "cut_metrics"}
    report = open(tmp_path / "out" / "report.md").read()
    for name in ("cut_config", "bad_value", "cut_results", "cut_metrics"):
        assert f"`{name}` (partial)" in report
    # The command line does the same and says which runs are incomplete (exit status 1), no traceback.
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "benchmark.py"), "--config-file", str(bench),
                           "--collect-only"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "cut_results: partial" in proc.stdout and os.path.isfile(tmp_path / "out" / "report.md")


# ------------------------------------------------------------------ 6. fatal errors reach log.txt


class _Raise(HookBase):
    def __init__(self, at, exc):
        self.at, self.exc = at, exc

    def after_step(self):
        if self.trainer.iter == self.at:
            raise self.exc


@pytest.mark.parametrize("exc, expected", [
    (KeyboardInterrupt(), "Training interrupted by KeyboardInterrupt"),
    (RuntimeError("disk on fire"), "Training failed: RuntimeError: disk on fire"),
])
def test_a_fatal_error_is_the_last_entry_of_log_txt(tmp_path, exc, expected):
    out = str(tmp_path)
    with pytest.raises(type(exc)):
        run_main(*TINY, "train.max_iter=4", "train.checkpointer.period=100", f"train.output_dir={out}",
                 extra_hooks=lambda model, trainer: [_Raise(0, exc)])
    log = open(os.path.join(out, "log.txt")).read()
    assert expected in log.rstrip().splitlines()[-1]
    assert "Traceback (most recent call last)" in log and "in after_step" in log


def test_a_pretraining_failure_reaches_its_log_txt(tmp_path, demo_root):
    import argparse

    from vitdet_bench.pretrain.engine import pretrain_main

    out = str(tmp_path / "mae")
    opts = ["train.max_iter=3", "dataloader.train.total_batch_size=2", f"train.output_dir={out}", "train.log_period=1",
            "dataloader.train.dataset.size=64"]  # a small pre-training pool
    args = argparse.Namespace(config_file=os.path.join(REPO, "projects/MAE/configs/mae_vit_tiny_demo.py"), opts=opts,
                              resume=False, eval_only=False, num_gpus=1, num_machines=1, machine_rank=0,
                              dist_url="auto")
    with pytest.raises(RuntimeError, match="export failed"):
        pretrain_main(args, extra_hooks=lambda model, trainer: [_Raise(0, RuntimeError("export failed"))])
    assert "Pre-training failed: RuntimeError: export failed" in _log_tail(out, 1)


# ------------------------------------------------------------------ 5. truncated images


def test_a_truncated_jpeg_is_named_and_skipped_on_request(demo_root, tmp_path, caplog):
    from vitdet_bench.data import build_detection_train_loader, get_detection_dataset
    from vitdet_bench.data.mapper import DetectionDatasetMapper, ImageReadError, read_image

    data = json.load(open(os.path.join(demo_root, "train.json")))
    data["images"] = data["images"][:3]
    ids = {im["id"] for im in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    for im in data["images"]:
        shutil.copy(os.path.join(demo_root, "train", im["file_name"]), img_dir / im["file_name"])
    victim = img_dir / data["images"][1]["file_name"]
    raw = victim.read_bytes()
    victim.write_bytes(raw[: len(raw) // 2])  # header intact, data cut: OpenCV decodes it half grey
    json_file = tmp_path / "ann.json"
    json_file.write_text(json.dumps(data))
    dataset = get_detection_dataset("truncated_case", json_file=str(json_file), image_root=str(img_dir))
    record = next(r for r in dataset[0] if r["file_name"] == str(victim))
    with pytest.raises(ImageReadError) as e:
        read_image(record)
    assert str(victim) in str(e.value) and "truncated" in str(e.value)
    assert f"image id {record['image_id']}" in str(e.value)
    mapper = DetectionDatasetMapper(is_train=True, image_size=64)
    loader = build_detection_train_loader(dataset, mapper, total_batch_size=3, on_bad_image="skip", seed=0)
    with caplog.at_level(logging.WARNING):
        batch = next(iter(loader))
    assert len(batch) == 3 and str(victim) not in [b["file_name"] for b in batch]
    assert "Skipping a bad image" in caplog.text and "truncated" in caplog.text
    # Bytes after a complete image (some cameras append data) are not a truncation.
    extra = tmp_path / "extra.jpg"
    extra.write_bytes(raw + b"appended metadata")
    assert read_image({"file_name": str(extra)}).shape[2] == 3


# ------------------------------------------------------------------ 7. messages that name the key, file, dataset


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed")])
def test_a_failed_checkpoint_write_names_the_file_and_the_cause(tmp_path, monkeypatch, error):
    model = torch.nn.Linear(2, 2)
    ckpt = Checkpointer(model, str(tmp_path))
    ckpt.save("model_0000001", iteration=1)
    before = _digest(tmp_path / "model_0000001.pth")

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise error

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(CheckpointError) as e:
        ckpt.save("model_0000003", iteration=3)
    msg = str(e.value)
    assert str(tmp_path / "model_0000003.pth") in msg and "MiB free" in msg
    assert ("the disk is full" in msg) if isinstance(error, OSError) else ("PytorchStreamWriter" in msg)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]
    assert _digest(tmp_path / "model_0000001.pth") == before


@pytest.mark.parametrize("override, key, kind", [
    ("train.max_iter=abc", "train.max_iter", "an integer"),
    ("train.amp.enabled=1", "train.amp.enabled", "a boolean"),
    ("optimizer.lr=fast", "optimizer.lr", "a number"),
    ("model.backbone.bottom_up.net.window_block_indexes=3", "model.backbone.bottom_up.net.window_block_indexes",
     "a list"),
])
def test_a_wrong_type_override_names_key_and_expected_kind(override, key, kind):
    from vitdet_bench.config import LazyConfig

    cfg = LazyConfig.load(DEMO_CONFIG)
    with pytest.raises(ValueError) as e:
        LazyConfig.apply_overrides(cfg, [override])
    assert f"Override '{override}'" in str(e.value) and f"{key} holds {kind}" in str(e.value)
    # What still works: ints for numbers, integral numbers for ints, None, interpolated keys.
    LazyConfig.apply_overrides(cfg, ["optimizer.lr=1", "train.max_iter=1e3", "train.seed=None"])
    assert cfg.train.max_iter == 1000 and isinstance(cfg.train.max_iter, int)


def test_a_bbox_of_strings_names_the_file_and_annotation(demo_root, tmp_path):
    from vitdet_bench.data.coco import CocoFormatError, load_coco_json

    data = json.load(open(os.path.join(demo_root, "val.json")))
    data["annotations"][2]["bbox"] = ["10", "20", "30", "40"]
    data["images"][0]["height"] = "tall"
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CocoFormatError) as e:
        load_coco_json(str(path), os.path.join(demo_root, "val"))
    assert str(path) in str(e.value) and f"image id {data['images'][0]['id']}" in str(e.value)
    assert "'tall'" in str(e.value)
    data["images"][0]["height"] = 256
    path.write_text(json.dumps(data))
    with pytest.raises(CocoFormatError) as e:
        load_coco_json(str(path), os.path.join(demo_root, "val"))
    assert str(path) in str(e.value) and f"annotation id {data['annotations'][2]['id']}" in str(e.value)
    assert "bbox: must be four numbers" in str(e.value)


def test_an_empty_training_dataset_names_the_dataset_and_file(demo_root, tmp_path):
    from vitdet_bench.data import DetectionDatasetMapper, build_detection_train_loader, get_detection_dataset

    data = json.load(open(os.path.join(demo_root, "val.json")))
    data["annotations"] = []
    path = tmp_path / "no_annotations.json"
    path.write_text(json.dumps(data))
    dataset = get_detection_dataset("empty_case", json_file=str(path), image_root=os.path.join(demo_root, "val"),
                                    filter_empty=True)
    with pytest.raises(ValueError) as e:
        build_detection_train_loader(dataset, DetectionDatasetMapper(is_train=True, image_size=64), total_batch_size=2)
    assert "'empty_case'" in str(e.value) and str(path) in str(e.value) and "filter_empty" in str(e.value)


def test_the_dataset_hint_works_for_pretraining(demo_root):
    from vitdet_bench.data.catalog import get_dataset_spec
    from vitdet_bench.pretrain import detection_image_dataset

    with pytest.raises(KeyError) as e:
        get_dataset_spec("my_unlabelled_pool")
    assert "+dataloader.train.dataset.json_file=" in str(e.value)
    # Following the hint in a pre-training config: names + json_file + image_root.
    json_file = os.path.join(demo_root, "minival.json")
    records, meta = detection_image_dataset("my_unlabelled_pool", json_file=json_file,
                                            image_root=os.path.join(demo_root, "val"))
    assert len(records) == len(json.load(open(json_file))["images"]) and meta.name == "my_unlabelled_pool"
    assert all(os.path.isfile(r["file_name"]) for r in records)


# ------------------------------------------------------------------ 8. every evaluation reaches metrics.json (issue 27)


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))

    def forward(self, batch):
        return {"loss": ((self.w - 2) ** 2).sum()}


def test_every_evaluation_reaches_metrics_json_whatever_the_log_period(tmp_path):
    """Issue 27 #13: with train.eval_period=1 and train.log_period=3, three evaluations ran but
    metrics.json kept only the last (the writers keep each scalar's latest value): the convergence
    curve silently lost points. The evaluation returns known values (10 + iteration); each must be
    in the row of its iteration, in metrics.json and in the TensorBoard events."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    from vitdet_bench.engine import EvalHook, PeriodicWriter
    from vitdet_bench.utils.events import JSONWriter, TensorboardWriter

    model = _Toy()
    trainer = SimpleTrainer(model, iter([None] * 100), torch.optim.SGD(model.parameters(), lr=0.1))
    evaluated = []

    def evaluate():
        evaluated.append(trainer.iter)
        return {"bbox": {"AP": 10.0 + trainer.iter}}

    writers = [JSONWriter(str(tmp_path / "metrics.json")), TensorboardWriter(str(tmp_path))]
    trainer.register_hooks([EvalHook(1, evaluate), PeriodicWriter(writers, period=3)])
    trainer.train(0, 5)
    assert evaluated == [0, 1, 2, 3, 4]
    rows = [json.loads(line) for line in open(tmp_path / "metrics.json")]
    assert {r["iteration"]: r["bbox/AP"] for r in rows if "bbox/AP" in r} == {i: 10.0 + i for i in range(5)}
    assert {r["iteration"] for r in rows if "loss" in r} >= {2, 4}  # the periodic rows are still there
    tb = {}
    for name in os.listdir(tmp_path):
        if name.startswith("events.out.tfevents"):
            for ev in EventFileLoader(str(tmp_path / name)).Load():
                for v in ev.summary.value:
                    if v.tag == "bbox/AP":
                        tb[ev.step] = v.simple_value if v.HasField("simple_value") else None
    assert sorted(tb) == [0, 1, 2, 3, 4]
