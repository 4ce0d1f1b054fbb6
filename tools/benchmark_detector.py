#!/usr/bin/env python
"""Training and inference speed and peak memory of a detection config on this machine's device.

    python tools/benchmark_detector.py --config-file configs/COCO/mask_rcnn_vit_b_mae_100ep.py --demo-data \
        [--batch 4] [--warmup 5] [--iters 20] [--images 50] [--device cuda] [--profile] [--flops] [--json out.json] \
        [train.amp.dtype=bfloat16 train.compile.enabled=True ...]

Training: s/iteration, s/image and images/s of the config's own step (AMP, GradScaler, clipping) at
--batch images, batches loaded beforehand; inference: s/image at batch 1 (the ViTDet paper's
protocol), pre-processing to pasted masks, in the config's inference dtype (train.amp.inference);
peak memory (CUDA max_memory_allocated) per phase and per image. Warm-up steps are excluded and
each timed call is CUDA-synchronised; the first call (with train.compile.enabled, the compilation)
is reported apart. Also: which SDPA kernel served window and global attention, with --profile
the profiler's top operators, and with --flops the backbone's FLOP count (the project's counter)
with each phase's achieved TFLOP/s and MFU against the GPU's bf16 peak. --demo-data runs on the
bundled demo images (no COCO needed).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vitdet_bench.utils.cli import CommandLineParser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = CommandLineParser(description=__doc__)
    parser.add_argument("--config-file", required=True, help="a detection LazyConfig or a run's config.yaml")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--batch", type=int, default=4, help="images per training step (default 4, one process)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps / images before each phase")
    parser.add_argument("--iters", type=int, default=20, help="timed training steps")
    parser.add_argument("--images", type=int, default=50, help="timed single-image inference passes")
    parser.add_argument("--skip-train", action="store_true", help="time inference only")
    parser.add_argument("--skip-inference", action="store_true", help="time training only")
    parser.add_argument("--profile", type=int, nargs="?", const=5, default=0, metavar="STEPS",
                        help="add the profiler's top operators over STEPS steps / images (default 5)")
    parser.add_argument("--flops", action="store_true",
                        help="count the backbone's FLOPs; report achieved TFLOP/s and MFU per phase")
    parser.add_argument("--demo-data", action="store_true",
                        help="use the bundled demo dataset (demo_train / demo_val, its 4 classes) in place of the "
                        "config's splits")
    parser.add_argument("--json", default=None, help="also write the report as JSON")
    args = parser.parse_args(argv)
    small = {f"--{k}": getattr(args, k) for k in ("batch", "warmup", "iters", "images") if getattr(args, k) < 1}
    if small:
        parser.error(f"{', '.join(small)} must be >= 1, got {', '.join(str(v) for v in small.values())}")

    import torch

    from vitdet_bench.benchmark.throughput import DEMO_DATA, benchmark_detector, format_speed_report
    from vitdet_bench.config import LazyConfig
    from vitdet_bench.utils.logger import setup_logger

    setup_logger()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    opts = (DEMO_DATA if args.demo_data else []) + list(args.opts)
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), opts)
    report = benchmark_detector(cfg, device, batch_size=args.batch, warmup=args.warmup, train_iters=args.iters,
                                inference_images=args.images, train=not args.skip_train,
                                inference=not args.skip_inference, profile_steps=args.profile,
                                flops=args.flops)
    report["config"] = os.path.abspath(args.config_file)
    report["overrides"] = opts
    print(format_speed_report(report, title=f"{args.config_file} {' '.join(opts)}".strip()))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
