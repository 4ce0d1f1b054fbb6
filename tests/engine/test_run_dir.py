"""Run directories lose nothing and say nothing false (issue 27): what --overwrite deletes, --resume of a
finished run, of a shorter schedule, without last_checkpoint, with a cut config.yaml or a cut last
checkpoint, config.yaml kept until a resumed step succeeds, and bad keys named before anything is written.

Every case starts from a copy of one finished 4-iteration run (checkpoints at iterations 1 and 3, a final
evaluation on two validation images) and checks the files on disk against that run's own files: what must
not change is compared byte for byte, and what a fix recomputes (the final evaluation, the weights of a
resumed run) is compared with the values the uninterrupted run wrote.
"""

import hashlib
import json
import os
import shutil

import pytest
import torch

from vitdet_bench.checkpoint import CheckpointError
from vitdet_bench.engine import default_argument_parser, main
from vitdet_bench.engine.run_dir import RunDirError, clear_run

from helpers import DEMO_CONFIG, FAST_OVERRIDES

TINY = [*FAST_OVERRIDES, "train.log_period=1", "train.checkpointer.period=2", "train.eval_period=0"]


def run_main(*argv, extra_hooks=None):
    args = default_argument_parser().parse_args(["--config-file", DEMO_CONFIG, *argv])
    return main(args, extra_hooks=extra_hooks)


def _digest(path) -> str:
    return hashlib.sha1(open(path, "rb").read()).hexdigest()


def _snapshot(out, skip=()):
    """Every file under ``out`` (recursively) -> its digest."""
    files = {}
    for folder, _, names in os.walk(out):
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), out)
            if rel not in skip:
                files[rel] = _digest(os.path.join(folder, name))
    return files


def _rows(out):
    return [json.loads(line) for line in open(os.path.join(out, "metrics.json"))]


@pytest.fixture(scope="module")
def val_two(demo_root, tmp_path_factory):
    """Overrides that evaluate on two validation images (a short final evaluation)."""
    folder = tmp_path_factory.mktemp("val_two")
    val = json.load(open(os.path.join(demo_root, "val.json")))
    val["images"] = val["images"][:2]
    val["annotations"] = [a for a in val["annotations"] if a["image_id"] in {im["id"] for im in val["images"]}]
    (folder / "val2.json").write_text(json.dumps(val))
    return ["dataloader.test.dataset.names=run_dir_val_two",
            f"+dataloader.test.dataset.json_file={folder / 'val2.json'}",
            f"+dataloader.test.dataset.image_root={os.path.join(demo_root, 'val')}"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, val_two):
    out = str(tmp_path_factory.mktemp("finished") / "run")
    run_main(*TINY, *val_two, "train.max_iter=4", f"train.output_dir={out}")
    assert sorted(f for f in os.listdir(out) if f.endswith(".pth")) == ["model_0000001.pth", "model_final.pth"]
    assert "bbox/AP" in _rows(out)[-1] and _rows(out)[-1]["iteration"] == 3
    return out


@pytest.fixture
def run(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return str(out)


def _args(val_two, out, *more):
    return [*TINY, *val_two, "train.max_iter=4", f"train.output_dir={out}", *more]


# ------------------------------------------------------------------ 1. --overwrite deletes the run's files only


def test_overwrite_keeps_a_users_files_that_start_like_the_log(tmp_path):
    """Issue 27 #1: --overwrite deleted every name starting with log.txt, a user's log.txt.bak too."""
    for name in ("log.txt", "log.txt.rank1", "metrics.json", "log.txt.bak", "log.txt.2024-notes", "notes.txt"):
        (tmp_path / name).write_text(name)
    assert clear_run(str(tmp_path)) == ["log.txt", "log.txt.rank1", "metrics.json"]
    assert sorted(os.listdir(tmp_path)) == ["log.txt.2024-notes", "log.txt.bak", "notes.txt"]
    assert (tmp_path / "log.txt.bak").read_text() == "log.txt.bak"


def test_overwrite_refuses_to_delete_the_checkpoint_it_starts_from(run, val_two):
    """Issue 27 #10: --eval-only --overwrite into the run whose model_final.pth is the init deleted the
    whole run, then failed because the checkpoint was gone."""
    before = _snapshot(run)
    with pytest.raises(RunDirError) as e:
        run_main("--eval-only", "--overwrite", *_args(val_two, run, f"train.init_checkpoint={run}/model_final.pth"))
    msg = str(e.value)
    assert f"--overwrite would delete train.init_checkpoint={run}/model_final.pth" in msg
    assert "another train.output_dir=" in msg and "leave out --overwrite" in msg
    assert _snapshot(run) == before


# ------------------------------------------------------------------ 2, 3, 11. --resume of a finished run


def test_resume_of_a_finished_run_trains_nothing_and_changes_nothing(run, finished, val_two):
    """Issue 27 #2: --resume on a finished run said "Trained 1 iterations in 0.0 s" (nothing was trained),
    rewrote config.yaml and opened another TensorBoard event file."""
    before = _snapshot(run, skip=("log.txt",))
    log_before = open(os.path.join(run, "log.txt")).read()
    results = run_main("--resume", *_args(val_two, run))
    assert _snapshot(run, skip=("log.txt",)) == before
    new_log = open(os.path.join(run, "log.txt")).read()[len(log_before):]
    assert "holds a finished run" in new_log and "Nothing to train" in new_log and "Trained" not in new_log
    final = _rows(finished)[-1]
    assert results == {task: {k.split("/")[1]: v for k, v in final.items() if k.startswith(task + "/")}
                       for task in ("bbox", "segm")}


def test_resume_to_a_shorter_schedule_is_refused_and_writes_nothing(run, val_two):
    """Issue 27 #3: --resume train.max_iter=2 on the finished 4-iteration run exited 0 and rewrote
    config.yaml to max_iter 2 while model_final.pth holds 4 iterations."""
    before = _snapshot(run)
    with pytest.raises(RunDirError) as e:
        run_main("--resume", *_args(val_two, run, "train.max_iter=2"))
    msg = str(e.value)
    assert "train.max_iter=2" in msg and "trained 4 iterations (model_final.pth)" in msg
    assert "train.max_iter >= 4" in msg and "train.output_dir=" in msg and "--overwrite" in msg
    assert _snapshot(run) == before


def test_a_finished_run_that_lost_its_final_evaluation_gets_it_back(run, finished, val_two):
    """Issue 27 #11 (engine side): a finished run whose metrics.json lost its last row, resumed, ran
    nothing and stayed without its final evaluation. Now that evaluation runs again on model_final.pth
    and its row equals the one the run wrote; the other rows and the checkpoints are untouched."""
    from vitdet_bench.benchmark.collect import collect_run

    lines = open(os.path.join(run, "metrics.json")).read().splitlines()
    open(os.path.join(run, "metrics.json"), "w").write("\n".join(lines[:-1]) + "\n")
    assert collect_run("run", run).status == "partial"
    checkpoints = {f: _digest(os.path.join(run, f)) for f in os.listdir(run) if f.endswith(".pth")}
    run_main("--resume", *_args(val_two, run))
    rows, reference = _rows(run), _rows(finished)
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    assert rows[:-1] == reference[:-1]
    for key, value in reference[-1].items():
        if "/" in key:
            assert rows[-1][key] == pytest.approx(value, abs=1e-9, nan_ok=True), key
    assert collect_run("run", run).status == "complete"
    assert {f: _digest(os.path.join(run, f)) for f in os.listdir(run) if f.endswith(".pth")} == checkpoints


def test_resume_without_last_checkpoint_keeps_the_finished_run(run, val_two):
    """Issue 27 #5: with last_checkpoint deleted, --resume train.max_iter=3 said it started a new run,
    claimed to drop rows "of an earlier, interrupted attempt", and replaced the 4-iteration
    model_final.pth with a 3-iteration one."""
    os.remove(os.path.join(run, "last_checkpoint"))
    before = _snapshot(run)
    with pytest.raises(RunDirError) as e:
        run_main("--resume", *_args(val_two, run, "train.max_iter=3"))
    msg = str(e.value)
    marker = os.path.join(run, "last_checkpoint")
    assert "has no last_checkpoint file, but holds model_final.pth, model_0000001.pth" in msg
    assert f"echo model_final.pth > {marker}" in msg and "--overwrite" in msg
    assert _snapshot(run) == before


# ------------------------------------------------------------------ 4, 12. config.yaml on resume


def _truncated_dataset(demo_root, folder):
    """Two training images, both cut in half (a new dataset whose first batch cannot load)."""
    data = json.load(open(os.path.join(demo_root, "train.json")))
    data["images"] = data["images"][:2]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in {im["id"] for im in data["images"]}]
    os.makedirs(folder / "images")
    for im in data["images"]:
        raw = open(os.path.join(demo_root, "train", im["file_name"]), "rb").read()
        (folder / "images" / im["file_name"]).write_bytes(raw[: len(raw) // 2])
    (folder / "ann.json").write_text(json.dumps(data))
    return ["dataloader.train.dataset.names=run_dir_truncated",
            f"+dataloader.train.dataset.json_file={folder / 'ann.json'}",
            f"+dataloader.train.dataset.image_root={folder / 'images'}"]


def test_a_resume_that_fails_at_its_first_step_keeps_config_yaml(run, val_two, demo_root, tmp_path):
    """Issue 27 #4: a resume with a new dataset whose images are cut had rewritten config.yaml with the new
    dataset before its first step failed. Also (a vague one): the "Resuming with N changed config keys"
    warning went to the console only; it is in log.txt now."""
    from vitdet_bench.data.mapper import ImageReadError

    os.remove(os.path.join(run, "model_final.pth"))
    open(os.path.join(run, "last_checkpoint"), "w").write("model_0000001.pth")
    config = _digest(os.path.join(run, "config.yaml"))
    with pytest.raises(ImageReadError):
        run_main("--resume", *_args(val_two, run, *_truncated_dataset(demo_root, tmp_path)))
    assert _digest(os.path.join(run, "config.yaml")) == config
    log = open(os.path.join(run, "log.txt")).read()
    assert "Resuming" in log and "changed config keys" in log
    assert "dataloader.train.dataset.names: 'demo_train' -> 'run_dir_truncated'" in log


def test_resume_with_a_cut_config_yaml_names_the_file(run, val_two):
    """Issue 27 #12 (engine side): a cut config.yaml stopped --resume with a raw yaml ParserError."""
    path = os.path.join(run, "config.yaml")
    text = open(path).read()
    open(path, "w").write(text[: text.index("model:") + 40] + "\n  - [unclosed")
    before = _snapshot(run)
    with pytest.raises(RunDirError) as e:
        run_main("--resume", *_args(val_two, run))
    msg = str(e.value)
    assert f"{path} is unreadable" in msg and "delete it to resume without the check" in msg
    assert _snapshot(run) == before


# ------------------------------------------------------------------ a cut last checkpoint


def test_a_cut_last_checkpoint_names_the_intact_one_and_that_resume_works(run, finished, val_two):
    """A vague one: a cut last checkpoint's message did not say which earlier checkpoint is intact and how
    to use it. Following the message resumes to the same weights as the uninterrupted run."""
    final = os.path.join(run, "model_final.pth")
    raw = open(final, "rb").read()
    open(final, "wb").write(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError) as e:
        run_main("--resume", *_args(val_two, run))
    msg = str(e.value)
    marker = os.path.join(run, "last_checkpoint")
    assert f"Cannot resume from {final}" in msg
    assert f"The newest intact checkpoint is {os.path.join(run, 'model_0000001.pth')} (iteration 1)" in msg
    assert f"echo model_0000001.pth > {marker}" in msg
    open(marker, "w").write("model_0000001.pth")  # what the message says
    run_main("--resume", *_args(val_two, run))
    a = torch.load(os.path.join(finished, "model_final.pth"), weights_only=True)["model"]
    b = torch.load(final, weights_only=True)["model"]
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].numel()) < 1e-5


# ------------------------------------------------------------------ bad values, named before anything is written


@pytest.mark.parametrize("override, error, words", [
    ("train.output_dir=", ValueError, ["train.output_dir is empty", "set train.output_dir=DIR"]),
    ("dataloader.train.total_batch_size=0", ValueError, ["dataloader.train.total_batch_size=0", "at least 1"]),
    ("train.init_checkpoint={folder}", CheckpointError, ["train.init_checkpoint={folder} is a folder",
                                                          "{folder}/model_0000001.pth"]),
    ("train.init_checkpoint={folder}/model_0000009.pth", CheckpointError,
     ["{folder}/model_0000009.pth does not exist"]),
])
def test_a_bad_value_is_named_before_anything_is_written(finished, tmp_path, override, error, words):
    """Vague ones: an empty train.output_dir (FileNotFoundError: ''), total_batch_size=0 (torch's sampler
    message), a folder as train.init_checkpoint ("does not exist", after the loader was built)."""
    out = tmp_path / "new"
    override = override.format(folder=finished)
    opts = [*TINY, "train.max_iter=2", f"train.output_dir={out}"]
    with pytest.raises(error) as e:
        run_main(*opts, override)
    for word in words:
        assert word.format(folder=finished) in str(e.value)
    assert not out.exists()


def test_a_missing_pretraining_init_checkpoint_is_found_before_the_pool_is_drawn(tmp_path, monkeypatch):
    """A vague one: a missing pre-training train.init_checkpoint was found only after drawing the pool."""
    import argparse

    import vitdet_bench.pretrain.data as pretrain_data
    from vitdet_bench.pretrain.engine import pretrain_main

    from helpers import REPO

    def no_pool(*args, **kwargs):
        raise AssertionError("the pool was drawn before the init checkpoint was checked")

    monkeypatch.setattr(pretrain_data, "ensure_demo_pool", no_pool)
    out = tmp_path / "mae"
    missing = tmp_path / "released" / "mae_pretrain_vit_tiny.pth"
    args = argparse.Namespace(config_file=os.path.join(REPO, "projects/MAE/configs/mae_vit_tiny_demo.py"),
                              opts=[f"train.output_dir={out}", f"train.init_checkpoint={missing}"], resume=False,
                              eval_only=False, num_gpus=1, num_machines=1, machine_rank=0, dist_url="auto")
    with pytest.raises(CheckpointError, match=f"train.init_checkpoint={missing} does not exist"):
        pretrain_main(args)
    assert not out.exists()


def test_resume_of_a_finished_pretraining_only_restores_a_missing_export(tmp_path, demo_root):
    """Issue 27 #2 for pre-training: --resume of a finished run trains nothing; when its backbone_final.pth
    is missing (the export failed after model_final.pth was written) it is exported again, equal to the one
    the run wrote, and nothing else changes."""
    from vitdet_bench.pretrain.engine import run_pretrain

    from helpers import REPO

    out = tmp_path / "mae"
    argv = ["--config-file", os.path.join(REPO, "projects/MAE/configs/mae_vit_tiny_demo.py"), "train.max_iter=2",
            "lr_multiplier.warmup_iters=1", "dataloader.train.dataset.size=16", "dataloader.train.total_batch_size=2",
            "train.log_period=1", f"train.output_dir={out}"]
    run_pretrain(argv)
    export = torch.load(out / "backbone_final.pth", weights_only=True)
    os.remove(out / "backbone_final.pth")
    before = _snapshot(out, skip=("log.txt",))
    run_pretrain(["--resume", *argv])
    again = torch.load(out / "backbone_final.pth", weights_only=True)
    assert again["meta"] == export["meta"]
    assert all(torch.equal(again["model"][k], v) for k, v in export["model"].items())
    after = _snapshot(out, skip=("log.txt", "backbone_final.pth"))
    assert {k: v for k, v in after.items() if not k.startswith("events.out")} == \
        {k: v for k, v in before.items() if not k.startswith("events.out")}
    log = open(out / "log.txt").read()
    assert "Nothing to train" in log and "Exported" in log and "(it was missing)" in log
    before = _snapshot(out, skip=("log.txt",))
    run_pretrain(["--resume", *argv])  # everything there: nothing to do at all
    assert _snapshot(out, skip=("log.txt",)) == before
    assert "holds a finished run with its" in open(out / "log.txt").read()
