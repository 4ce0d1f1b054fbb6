# `tools/benchmark.py --quick`: the demo benchmark with short schedules (a smoke run of the whole
# pipeline in under 5 minutes on 2 CPU cores; its APs are not meaningful).
from .demo import benchmark

det_iters = 40
benchmark["name"] = "demo_quick"
benchmark["output_dir"] = "./output/benchmark/demo_quick"
benchmark["detection_overrides"] = [f"train.max_iter={det_iters}", f"train.eval_period={det_iters}",
                                    "dataloader.train.total_batch_size=2", "train.checkpointer.period=0",
                                    "lr_multiplier.warmup_iters=5"]
benchmark["pretrain_overrides"] = ["train.max_iter=30", "lr_multiplier.warmup_iters=5"]
