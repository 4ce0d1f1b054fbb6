"""What the pre-training tests share: the command-line arguments of ``tools/pretrain_net.py`` and
the check that a run interrupted at a checkpoint and resumed equals one uninterrupted run."""

import argparse
import os

import torch

from vitdet_bench.checkpoint import safe_torch_load
from vitdet_bench.pretrain.engine import pretrain_main

from . import REPO


def pretrain_args(config: str, opts: list[str], resume: bool = False) -> argparse.Namespace:
    """``tools/pretrain_net.py --config-file REPO/config [--resume] opts...``, parsed."""
    return argparse.Namespace(config_file=os.path.join(REPO, config), opts=opts, resume=resume, eval_only=False,
                              num_gpus=1, num_machines=1, machine_rank=0, dist_url="auto")


def resumed_run_equals_one_run(config: str, common: list[str], tmp_path, period: int) -> tuple[dict, dict]:
    """Run ``config`` once; run it again with a checkpoint every ``period`` iterations, cut it at the
    first checkpoint and resume it. Asserts the two final models are equal tensor for tensor, and
    returns both runs' final exports (``backbone_final.pth``) for the caller's own checks."""
    pretrain_main(pretrain_args(config, common + [f"train.output_dir={tmp_path}/once"]))
    periodic = common + [f"train.output_dir={tmp_path}/twice", f"train.checkpointer.period={period}"]
    pretrain_main(pretrain_args(config, periodic))
    twice = tmp_path / "twice"
    for f in ("model_final.pth", "backbone_final.pth"):
        os.remove(twice / f)
    (twice / "last_checkpoint").write_text(f"model_{period - 1:07d}.pth")
    pretrain_main(pretrain_args(config, periodic, resume=True))
    a = safe_torch_load(str(tmp_path / "once" / "model_final.pth"))["model"]
    b = safe_torch_load(str(twice / "model_final.pth"))["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    once_export = safe_torch_load(str(tmp_path / "once" / "backbone_final.pth"))
    twice_export = safe_torch_load(str(twice / "backbone_final.pth"))
    assert all(torch.equal(once_export["model"][k], twice_export["model"][k]) for k in once_export["model"])
    return once_export, twice_export
