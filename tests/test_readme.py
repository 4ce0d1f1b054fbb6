"""Every command shown in README.md runs (issue 20): the README is read at test time, so a new command
there is a new test case here.

Commands are taken from the README's code blocks (continuation lines joined, comments dropped) and
from inline code that starts with ``python tools/``, ``make `` or ``torchrun ``. Each is made
concrete and cheap, then run as a subprocess from the repository root:

* optional parts (``[--resume]``, ``[key=value ...]``) are left out, a choice ``{mae,mocov3,...}``
  takes its first option, and placeholders (``CONFIG``, ``RUN_DIR``, ``IN``, ``img1.jpg``, ``N``...)
  become test files: the demo config, a finished run written by hand, a synthetic checkpoint;
* overrides appended after the README's own make runs tiny (2 iterations, batch 2) and send every
  output into a temporary directory; ``make TARGET`` runs the commands ``make -n TARGET`` prints;
* a command that needs data or weights that are not here (COCO, ImageNet) must stop with an error
  naming the missing file under ``$VITDET_BENCH_DATASETS`` (set to an empty temporary folder);
* a full benchmark (all initializations, no ``--only``) is run to its command list
  (``--print-commands``): the same code path runs for real in the ``--only`` command and in
  tests/benchmark/test_benchmark.py; ``make test`` is checked to run pytest on tests/, not run again.

A README command with a tool this file has no recipe for fails, naming the command.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import torch

from helpers import DEMO_CONFIG, REPO
from helpers.device_check import check_dry_run_report, run_dry_run
from helpers.runs import fake_finished_run
from helpers.vit import containers, timm_vit

README = os.path.join(REPO, "README.md")
COMMAND = re.compile(r"^(python tools/\S+\.py|make\b|torchrun\b)")
TINY_TRAIN = ["train.max_iter=2", "dataloader.train.total_batch_size=2", "train.eval_period=-1",
              "train.checkpointer.period=100", "train.log_period=1", "lr_multiplier.warmup_iters=1"]
TINY_DETECTION = ["train.max_iter=2", "train.eval_period=0", "dataloader.train.total_batch_size=2",
                  "train.checkpointer.period=0", "lr_multiplier.warmup_iters=1", "train.log_period=1",
                  "dataloader.test.dataset.names=demo_minival", "train.eval_subset=null"]
# The demo pre-training configs read the generated pool (demo_pool_dataset); 64 images are enough here.
TINY_PRETRAIN = ["train.max_iter=2", "dataloader.train.total_batch_size=2", "lr_multiplier.warmup_iters=1",
                 "train.log_period=1", "dataloader.train.dataset.size=64"]


def readme_commands() -> list[str]:
    """The commands README.md shows, in order, each once."""
    text = open(README, encoding="utf-8").read()
    commands = []
    blocks = re.findall(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", text, flags=re.S | re.M)
    for block in blocks:
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.sub(r"\s+#.*$", "", line.strip())
            if COMMAND.match(line):
                commands.append(line)
    prose = re.sub(r"^[ \t]*```[^\n]*\n.*?^[ \t]*```", "", text, flags=re.S | re.M)
    commands += [span.strip() for span in re.findall(r"`([^`\n]+)`", prose) if COMMAND.match(span.strip())]
    return list(dict.fromkeys(re.sub(r"\s+", " ", c) for c in commands))


def concrete_words(command: str) -> list[str]:
    """Drop optional ``[...]`` parts and ``...``, take the first of ``{a,b}`` and of ``a|b``; split
    like a shell."""
    previous = None
    while previous != command:
        previous, command = command, re.sub(r"\[[^\[\]]*\]", "", command)
    command = re.sub(r"\{([^{}]*,[^{}]*)\}", lambda m: m.group(1).split(",")[0], command)
    return [w.split("|")[0] if "|" in w else w for w in shlex.split(command) if w != "..."]


# ---------------------------------------------------------------------------------- test files


@pytest.fixture(scope="module")
def env(tmp_path_factory, demo_root):
    """Files the README's placeholders stand for, and the environment the commands run in."""
    from vitdet_bench.checkpoint import Checkpointer
    from vitdet_bench.config import LazyConfig
    from vitdet_bench.engine import build_model

    root = tmp_path_factory.mktemp("readme")
    run = root / "finished_run"
    fake_finished_run(str(run), demo_root)
    cfg = LazyConfig.load(str(run / "config.yaml"))
    torch.manual_seed(0)
    Checkpointer(build_model(cfg, torch.device("cpu")), str(run)).save("model_final", iteration=3)
    mae = root / "mae_pretrain.pth"
    torch.save(containers(timm_vit().state_dict())["mae"], mae)
    # Continued pre-training: a demo-size MAE in the official layout, and a pre-training run's checkpoint.
    from vitdet_bench.checkpoint import to_official
    from vitdet_bench.config import instantiate

    mae_demo = instantiate(LazyConfig.load(os.path.join(REPO, "projects/MAE/configs/mae_vit_tiny_demo.py")).model)
    torch.save(to_official(mae_demo.state_dict(), "mae"), root / "mae_official.pth")
    (root / "pretrain_run").mkdir()
    torch.save({"model": mae_demo.state_dict(), "iteration": 3}, root / "pretrain_run" / "model_final.pth")
    val = sorted(os.listdir(os.path.join(demo_root, "val")))[:2]
    return {
        "root": root,
        "run": run,
        "datasets": root / "datasets",  # empty: COCO and ImageNet are not here
        "words": {
            "CONFIG": [DEMO_CONFIG],
            "RUN_DIR": [str(run)],
            "IN": [str(mae)],
            "OUT": [str(root / "converted.pth")],
            "output/RUN/config.yaml": [str(run / "config.yaml")],
            "output/RUN/model_final.pth": [str(run / "model_final.pth")],
            # Detectron2 conversions: this run to a model-zoo .pkl, and that .pkl back.
            "RUN/config.yaml": [str(run / "config.yaml")],
            "RUN/model_final.pth": [str(run / "model_final.pth")],
            "CFG": [str(run / "config.yaml")],
            "OUT.pkl": [str(root / "detectron2_model.pkl")],
            "model_final_61ccd1.pkl": [str(root / "detectron2_model.pkl")],
            "OUT.pth": [str(root / "from_detectron2.pth")],
            "img1.jpg": [os.path.join(demo_root, "val", val[0])],
            "img2.jpg": [os.path.join(demo_root, "val", val[1])],
            "predictions/": [str(root / "predictions")],
            "tide_out": [str(root / "tide_out")],
            "N": ["1"],
            "PRETRAIN_RUN/model_final.pth": [str(root / "pretrain_run" / "model_final.pth")],
            "OFFICIAL.pth": [str(root / "official_layout.pth")],
        },
        "substrings": {  # the custom-dataset example's paths, and continued pre-training's released file
            "MAE_CHECKPOINT.pth": str(root / "mae_official.pth"),
            "/data/train.json": os.path.join(demo_root, "train.json"),
            "/data/val.json": os.path.join(demo_root, "val.json"),
            "/data/train": os.path.join(demo_root, "train"),
            "/data/val": os.path.join(demo_root, "val"),
        },
    }


def substitute(words: list[str], env: dict) -> list[str]:
    out = []
    for w in words:
        if w in env["words"]:
            out += env["words"][w]
            continue
        for old, new in env["substrings"].items():
            if w.endswith("=" + old) or w == old:
                w = w[: len(w) - len(old)] + new
                break
        if re.fullmatch(r"[A-Z][A-Z0-9_]+", w):
            pytest.fail(f"README placeholder {w} has no test value in tests/test_readme.py")
        out.append(w)
    return out


# ---------------------------------------------------------------------------------- how each tool runs


def _run(argv: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": REPO, "VITDET_BENCH_DATASETS": str(env["datasets"]),
               "OMP_NUM_THREADS": "1", "VITDET_BENCH_CONSOLE_LEVEL": "WARNING"}
    return subprocess.run(argv, cwd=REPO, env=environ, capture_output=True, text=True, timeout=timeout)


def _out(proc: subprocess.CompletedProcess) -> str:
    return f"\n--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"


def _ok_or_missing_data(proc: subprocess.CompletedProcess, env: dict) -> None:
    """Success, or an error whose last line names a file under the (empty) datasets folder."""
    if proc.returncode == 0:
        return
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    assert str(env["datasets"]) in last and re.match(r"^[\w.]+(Error|Exception)\b", last), _out(proc)


def _no_slurm_here(proc: subprocess.CompletedProcess, out) -> None:
    """A Slurm submission on a machine without Slurm: a one-line error naming what is missing, and
    nothing written (the jobs it would submit run in the README's other commands)."""
    assert proc.returncode == 1 and "sbatch" in proc.stderr and "Traceback" not in proc.stderr, _out(proc)
    assert not os.path.exists(out), _out(proc)


def run_training(words: list[str], env: dict, out_name: str) -> None:
    """lazyconfig_train_net / pretrain_net / train_tokenizer, directly or under torchrun."""
    out = env["root"] / out_name
    proc = _run([*words, *TINY_TRAIN, f"train.output_dir={out}"], env)
    if "--launcher" in words and shutil.which("sbatch") is None:
        _no_slurm_here(proc, out)
        return
    _ok_or_missing_data(proc, env)
    if proc.returncode == 0:
        assert any(f.endswith("_final.pth") for f in os.listdir(out)), _out(proc)


def run_benchmark(words: list[str], env: dict, out_name: str) -> None:
    from vitdet_bench.benchmark import load_benchmark

    out = env["root"] / out_name
    config = words[words.index("--config-file") + 1] if "--config-file" in words else os.path.join(
        REPO, "configs/benchmark/demo_quick.py" if "--quick" in words else "configs/benchmark/demo.py")
    extra = [f"output_dir={out}"]
    if "--launcher" in words and shutil.which("sbatch") is None:
        _no_slurm_here(_run([*words, *extra], env), out)
        return
    if "--only" in words and not {"--print-commands", "--collect-only"} & set(words):
        spec = load_benchmark(config)
        extra += [f"detection_overrides={_hydra_list(spec.detection_overrides + TINY_DETECTION)}",
                  f"pretrain_overrides={_hydra_list(spec.pretrain_overrides + TINY_PRETRAIN)}",
                  # the search and the probe at smoke size (tests/benchmark/ test them in full)
                  "search.select_split=demo_select50", "search.max_rounds=0", "probe.train=100", "probe.test=50"]
    elif not {"--print-commands", "--collect-only"} & set(words):
        extra.append("--print-commands")  # the full benchmark: see the module docstring
    proc = _run([*words, *extra], env)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, _out(proc)
    if "--print-commands" in words + extra:
        assert "tools/lazyconfig_train_net.py" in proc.stdout and str(out) in proc.stdout, _out(proc)
        return
    assert os.path.isfile(out / "report.md"), _out(proc)
    if "--only" in words:
        from vitdet_bench.benchmark.collect import collect_run

        only = words[words.index("--only") + 1:]
        only = only[: next((i for i, w in enumerate(only) if w.startswith("-") or "=" in w), len(only))]
        for name in only:
            r = collect_run(name, os.path.join(out, "runs", name))
            assert r.status == "complete", (name, r.problems, _out(proc))


def run_detectron2_conversion(words: list[str], env: dict) -> None:
    """``--to detectron2`` writes the finished run as a model-zoo ``.pkl``; ``--from detectron2`` reads
    it back: the round trip gives the run's own tensors."""
    from vitdet_bench.checkpoint import load_detectron2_pickle, safe_torch_load

    run_model = str(env["run"] / "model_final.pth")
    pkl = env["words"]["OUT.pkl"][0]
    to_d2 = ["--to", "detectron2", "--config-file", str(env["run"] / "config.yaml"), run_model, pkl]
    if "--from" in words and not os.path.isfile(pkl):  # the .pkl the README's first command writes
        assert _run([words[0], words[1], *to_d2], env).returncode == 0
    proc = _run(words, env)
    assert proc.returncode == 0, _out(proc)
    ours = safe_torch_load(run_model)["model"]
    if "--to" in words:
        d2 = load_detectron2_pickle(pkl)["model"]
        assert any(".net.blocks.0.attn.qkv.weight" in k for k in d2) and len(d2) >= len(ours) - 5, sorted(d2)[:5]
        return
    back = safe_torch_load(words[-1])
    back = back.get("model", back)
    assert set(back) == set(ours), sorted(set(back) ^ set(ours))[:10]
    # Detectron2 has no background slot in the per-class box deltas (4 rows) and mask logits (1
    # channel): they come back as zeros (never used); every other value is the run's own.
    slots = {"roi_heads.box_predictor.bbox_pred.weight": 4, "roi_heads.box_predictor.bbox_pred.bias": 4,
             "roi_heads.mask_predictor.mask_fcn_logits.weight": 1, "roi_heads.mask_predictor.mask_fcn_logits.bias": 1}
    for k in ours:
        n = slots.get(k, 0)
        same = torch.equal(back[k][n:], ours[k][n:]) and not back[k][:n].any() if n else torch.equal(back[k], ours[k])
        assert same, k


def _hydra_list(items: list[str]) -> str:
    return "[" + ",".join("'" + i.replace("\\", "\\\\").replace("'", "\\'") + "'" for i in items) + "]"


_DONE: set = set()


def run_tool(words: list[str], env: dict, out_name: str) -> None:
    """Run one ``python tools/X.py ...`` command its tool's way. A command that comes to the same as
    one already run (``make demo`` is ``python tools/benchmark.py``; ``make demo-detector`` is the
    CONFIG line with the demo config) runs once."""
    key = tuple(os.path.realpath(w) if os.path.exists(w) else w for w in words[1:])
    if key in _DONE:
        return
    _DONE.add(key)
    tool = os.path.basename(words[1])
    if tool in ("lazyconfig_train_net.py", "pretrain_net.py", "train_tokenizer.py"):
        return run_training(words, env, out_name)
    if tool == "benchmark.py":
        return run_benchmark(words, env, out_name)
    if tool == "tide_report.py":
        runs = {os.path.basename(p) for p in words[2:] if os.path.isfile(os.path.join(p, "config.yaml"))}
        proc = _run(words, env)
        assert proc.returncode == 0, _out(proc)
        out = words[words.index("--output") + 1]
        assert set(json.load(open(os.path.join(out, "tide.json")))) == runs and runs, _out(proc)
        return
    if tool == "convert_checkpoint.py" and "--to" in words and words[words.index("--to") + 1] != "detectron2":
        # A pre-training run -> an official method layout: the whole method, in the official names.
        proc = _run(words, env)
        assert proc.returncode == 0, _out(proc)
        from vitdet_bench.checkpoint import safe_torch_load

        written = safe_torch_load(words[-1])["model"]
        expected = {"mask_token", "decoder_pred.weight", "blocks.0.attn.qkv.weight", "cls_token"}
        assert expected <= set(written), _out(proc)
        return
    if tool == "convert_checkpoint.py" and ("--to" in words or "--from" in words and "detectron2" in words):
        return run_detectron2_conversion(words, env)
    if tool == "convert_checkpoint.py":
        proc = _run(words, env)
        assert proc.returncode == 0, _out(proc)
        from vitdet_bench.checkpoint import safe_torch_load

        assert "patch_embed.proj.weight" in safe_torch_load(words[-1])["model"]
        return
    if tool == "predict.py":
        proc = _run([*words, "--score-threshold", "0.0", "model.roi_heads.score_thresh=0.0"], env)
        assert proc.returncode == 0, _out(proc)
        out = words[words.index("--output") + 1]
        data = json.load(open(os.path.join(out, "detections.json")))
        inputs = words[words.index("--input") + 1:words.index("--output")]
        assert [r["file_name"] for r in data["images"]] == [os.path.abspath(p) for p in inputs]
        return
    if tool == "benchmark_backbone.py":
        proc = _run([*words, "--arch", "vit_t", "--size", "64", "--iters", "1", "--warmup", "0", "--no-flops",
                     "--only", "window-only"], env)
        assert proc.returncode == 0 and "window-only" in proc.stdout, _out(proc)
        return
    if tool == "benchmark_pretrain.py":
        if "--pipeline" in words:  # whole demo steps, before / after the data path: two steps of each
            words = words[:words.index("--only")] if "--only" in words else words
            proc = _run([*words, "--iters", "1", "--warmup", "0", "--only", "mae"], env)
            assert proc.returncode == 0 and "after / before" in proc.stdout and "| mae" in proc.stdout, _out(proc)
            return
        proc = _run([*words, "--size", "32", "--batch", "1", "--iters", "1", "--warmup", "0", "--only",
                     _first_pretrain_method()], env)
        assert proc.returncode == 0 and "s / step" in proc.stdout, _out(proc)
        return
    if tool == "benchmark_detector.py":
        # The README's config is loaded as written; the timing runs on the demo detector (a ViT-B step at
        # 1024 px takes minutes on a CPU; tests/engine/test_speed.py covers the tool's measurements).
        from vitdet_bench.config import LazyConfig

        config = words[words.index("--config-file") + 1]
        assert LazyConfig.load(config).model is not None
        words = [w if w != config else DEMO_CONFIG for w in words if w != "--demo-data"]
        proc = _run([*words, "--batch", "1", "--iters", "1", "--warmup", "1", "--images", "1"], env)
        assert proc.returncode == 0 and "images / s" in proc.stdout, _out(proc)
        return
    if tool == "device_check.py":
        # The README's command is the full check on a GPU; here it runs as its dry run, checked as
        # tests/benchmark/test_device_check.py checks it (the same run when both are collected).
        out = words.index("--output")
        proc, folder = run_dry_run(words[2:out] + words[out + 2:], env["root"])
        check_dry_run_report(proc, folder)
        return
    pytest.fail(f"README command {' '.join(words)!r}: no recipe in tests/test_readme.py to run it; add one")


def _first_pretrain_method() -> str:
    import importlib.util

    path = os.path.join(REPO, "tools", "benchmark_pretrain.py")
    spec = importlib.util.spec_from_file_location("benchmark_pretrain", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.METHODS[0]


def run_make(words: list[str], env: dict, out_name: str) -> None:
    dry = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    lines = [ln for ln in dry.stdout.splitlines() if "tools/" in ln or "-m pytest" in ln]
    assert lines, f"make -n {' '.join(words[1:])} runs no tool:\n{dry.stdout}"
    for i, line in enumerate(lines):
        inner = shlex.split(line)
        assert inner[0].endswith("python"), line
        if inner[1:3] == ["-m", "pytest"]:
            assert "tests" in inner[3:], line  # `make test` runs this suite; not again from inside it
            continue
        run_tool([sys.executable, *inner[1:]], env, f"{out_name}_{i}")


def _param(command: str):
    slow = command.startswith("python tools/benchmark.py") and "--only" in command and "--print-commands" not in command
    # pre-trains MAE and trains two detectors (2 iterations each); the device check's dry run, ~1.5 minutes
    slow = slow or command.startswith("python tools/device_check.py")
    marks = [pytest.mark.slow] if slow else []
    return pytest.param(command, id=command[:80], marks=marks)


@pytest.mark.parametrize("command", [_param(c) for c in readme_commands()])
def test_readme_command_runs(command, env):
    # Output paths the README names (./output/try) must stay untouched: outputs go to a temporary folder.
    named = [os.path.join(REPO, w.split("=", 1)[-1]) for w in concrete_words(command) if "output/" in w]
    existed = {p: os.path.exists(p) for p in named}
    words = substitute(concrete_words(command), env)
    out_name = re.sub(r"\W+", "_", command)[:60]
    if words[0] == "make":
        run_make(words, env, out_name)
    elif words[0] == "torchrun":
        # One process (the launch path, not the scale), on a free port.
        nproc = words.index("--nproc-per-node")
        run_training([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                      *words[nproc + 2:]], env, out_name)
    else:
        run_tool([sys.executable, *words[1:]] if words[0] == "python" else words, env, out_name)
    assert {p: os.path.exists(p) for p in named} == existed, f"{command} wrote into the repository"


def test_the_readme_shows_the_commands_this_file_expects():
    commands = readme_commands()
    tools = {re.match(r"python (tools/\S+)", c).group(1) for c in commands if c.startswith("python tools/")}
    assert {"tools/lazyconfig_train_net.py", "tools/pretrain_net.py", "tools/benchmark.py", "tools/predict.py",
            "tools/tide_report.py", "tools/convert_checkpoint.py"} <= tools
    assert any(c.startswith("make demo") for c in commands) and "make test" in commands
    # Parsing: a continuation line is joined, a comment dropped, a choice and options resolved.
    assert concrete_words("python tools/x.py --from {mae,beit} IN OUT [--patch-size 16]  ") == [
        "python", "tools/x.py", "--from", "mae", "IN", "OUT"]
    assert concrete_words("python tools/x.py [--a [--b B]] [key=value ...]") == ["python", "tools/x.py"]
    assert concrete_words("python tools/x.py --device cpu|cuda --seeds N") == [
        "python", "tools/x.py", "--device", "cpu", "--seeds", "N"]
