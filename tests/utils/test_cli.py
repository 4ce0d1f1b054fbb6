"""Every tool takes its flags anywhere on the line, and exactly the key=value words as overrides (issue 20).

The README's own example ``tools/benchmark.py --only mae random output_dir=./output/try`` failed
(``--only`` took the override as an initialization), and a flag after an override became an override
(``... output_dir=x --print-commands``); the training tools did the same with ``--resume``.
"""

import os
import subprocess
import sys

import pytest

from vitdet_bench.engine import default_argument_parser

from helpers import DEMO_CONFIG, REPO


def test_overrides_are_exactly_the_key_value_words():
    from vitdet_bench.utils.cli import is_override, split_overrides

    for word in ("train.max_iter=3", "+new.key=1", "++a=b", "x=", "model.backbone.blocks.0.w=[1,2]",
                 "output_dir=./output/try"):
        assert is_override(word), word
    for word in ("mae", "--resume", "--dist-url=tcp://h:1", "/data/img=1.jpg", "=x", "3=4", "a b=c"):
        assert not is_override(word), word
    taken = {"--config-file": 1, "--only": 0, "--resume": 0}
    rest, opts = split_overrides(["--only", "mae", "random", "output_dir=x", "--config-file", "a=b.py",
                                  "--resume", "k=v"], taken)
    assert rest == ["--only", "mae", "random", "--config-file", "a=b.py", "--resume"]  # a flag's value stays
    assert opts == ["output_dir=x", "k=v"]


def test_training_flags_after_overrides_are_flags():
    args = default_argument_parser().parse_args(
        ["train.max_iter=3", "--config-file", DEMO_CONFIG, "optimizer.lr=1e-4", "--resume", "--num-gpus", "2",
         "--eval-only"])
    assert args.config_file == DEMO_CONFIG and args.resume and args.eval_only and args.num_gpus == 2
    assert args.opts == ["train.max_iter=3", "optimizer.lr=1e-4"]


def test_positionals_may_come_between_flags():
    from vitdet_bench.utils.cli import CommandLineParser

    parser = CommandLineParser(overrides=False)
    parser.add_argument("run_dirs", nargs="*")
    parser.add_argument("--output")
    args = parser.parse_args(["runs/a", "--output", "o", "runs/lr=0.1"])
    assert args.run_dirs == ["runs/a", "runs/lr=0.1"] and args.output == "o" and not hasattr(args, "opts")


def _tool(*argv, timeout=300):
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_benchmark_only_then_an_override_then_a_flag(tmp_path):
    """The README's example, plus a flag after the override: both are honoured."""
    proc = _tool("tools/benchmark.py", "--only", "mae", "random", f"output_dir={tmp_path}/try", "--print-commands")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The demo tunes each init first: mae's jobs are its search points, then its selection step.
    assert f"train.output_dir={tmp_path}/try/search/mae/" in proc.stdout and "# random: random" in proc.stdout
    assert "--search-step mae" in proc.stdout


@pytest.mark.parametrize("tool, config", [
    ("tools/lazyconfig_train_net.py", DEMO_CONFIG),
    ("tools/pretrain_net.py", os.path.join(REPO, "projects/MAE/configs/mae_vit_tiny_demo.py")),
    ("tools/train_tokenizer.py", os.path.join(REPO, "projects/BEiT/configs/tokenizer_vq_demo.py")),
])
def test_training_tools_take_flags_after_overrides(tool, config, tmp_path):
    # A wrong override placed before two flags: the error is about the override's value, so both flags
    # were read as flags (before, '--num-gpus' became an override that could not be parsed).
    proc = _tool(tool, "train.max_iter=abc", "--config-file", config, "--num-gpus", "1", "--resume",
                 f"train.output_dir={tmp_path}")
    assert proc.returncode != 0
    assert "train.max_iter holds an integer" in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
    assert not os.listdir(tmp_path)
