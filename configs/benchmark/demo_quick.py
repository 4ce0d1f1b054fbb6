# `tools/benchmark.py --quick` (`make demo-quick`): the demo benchmark with short schedules and a
# small pool and validation set, a smoke run of the whole pipeline in under 5 minutes on 2 CPU
# cores. Its APs are not meaningful.
from .demo import benchmark

_det_iters = 40
benchmark["name"] = "demo_quick"
benchmark["profile"] = "quick smoke run"
benchmark["device"] = "auto"
benchmark["output_dir"] = "./output/benchmark/demo_quick"
benchmark["detection_overrides"] = [f"train.max_iter={_det_iters}", f"train.eval_period={_det_iters // 2}",
                                    "dataloader.train.total_batch_size=2", "train.checkpointer.period=0",
                                    "lr_multiplier.warmup_iters=5", "dataloader.test.dataset.names=demo_minival"]
benchmark["pretrain_overrides"] = ["train.max_iter=30", "lr_multiplier.warmup_iters=5",
                                   "dataloader.train.total_batch_size=16", "dataloader.train.dataset.size=1000"]
benchmark["bootstrap"] = dict(resamples=200, level=0.95, seed=0)
benchmark["profile_steps"] = 2
