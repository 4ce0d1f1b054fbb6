# `tools/benchmark.py --quick` (`make demo-quick`): the demo benchmark with short schedules, a small
# pool, probe set and validation set, and a 2-point search: a smoke run of the whole pipeline in a
# few minutes on 2 CPU cores. Its APs and probes are not meaningful.
from .demo import benchmark

_det_iters = 40
benchmark["name"] = "demo_quick"
benchmark["profile"] = "quick smoke run"
benchmark["device"] = "auto"
benchmark["output_dir"] = "./output/benchmark/demo_quick"
benchmark["detection_overrides"] = [f"train.max_iter={_det_iters}", f"train.eval_period={_det_iters // 2}",
                                    "dataloader.train.total_batch_size=2", "train.checkpointer.period=0",
                                    "lr_multiplier.warmup_iters=5", "dataloader.test.dataset.names=demo_minival",
                                    "train.eval_subset=None"]
benchmark["pretrain_overrides"] = ["train.max_iter=30", "lr_multiplier.warmup_iters=5",
                                   "dataloader.train.total_batch_size=16", "dataloader.train.dataset.size=1000"]
benchmark["bootstrap"] = dict(resamples=200, level=0.95, seed=0)
benchmark["profile_steps"] = 2
benchmark["search"].update(lr=dict(center=8e-4, factors=[1.0, 2.0]), max_rounds=0, grid_schedule=dict(iters=10),
                           select_split="demo_select50", protocol="2-point smoke test of the search")
benchmark["probe"] = dict(dataset="demo", train=200, test=100)
