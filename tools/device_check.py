#!/usr/bin/env python
"""Check every CUDA path and measure paper-scale speed on this machine's GPU, in one command.

    python tools/device_check.py --output device_check/            # one GPU, <= 8 minutes
    python tools/device_check.py --dry-run --output /tmp/dc         # tiny sizes, the CPU, ~1.5 minutes
    python tools/device_check.py --print-plan [--dry-run]           # the steps, commands and budgets

Runs, each step in its own process within its own time budget (a failure or timeout is recorded
and the next step runs): the demo data; the CUDA tests (tests/engine/test_cuda.py, marker cuda:
AMP fp16 / bf16, fused SDPA kernels, inference mode, GPU mask paste, SyncBN over NCCL, compiled
backbone); tools/benchmark_detector.py for ViT-B and ViT-L Mask R-CNN at 1024 px on the demo data
(train batch 4, inference batch 1, bf16, train.compile off and on, FLOPs counted); torchrun with
one process for 20 iterations, NCCL and SyncBN. Writes device_check.md and device_check.json
(device, versions, s/image, images/s, GB/image, TFLOP/s and MFU per phase, every check's status
and error line) and logs/ into --output, prints the Markdown, and exits 1 when a check failed.
--dry-run runs the same steps at the CPU's scale (vitdet_bench/benchmark/device_check.py says how).
"""

from __future__ import annotations

import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vitdet_bench.utils.cli import CommandLineParser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = CommandLineParser(description=__doc__, overrides=False)
    parser.add_argument("--output", default="output/device_check", help="folder for the report and the step logs")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on whatever device is here (CI, the CPU)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None,
                        help="the benchmarks' device (default: CUDA when available)")
    parser.add_argument("--only", nargs="+", default=None, metavar="STEP",
                        help="run only these steps (see --print-plan)")
    parser.add_argument("--print-plan", action="store_true", help="print the steps with their budgets and commands")
    args = parser.parse_args(argv)

    import torch

    from vitdet_bench.benchmark.device_check import (
        DRY_RUN_BUDGET_S,
        FULL_BUDGET_S,
        format_device_report,
        plan,
        run_device_check,
    )
    from vitdet_bench.utils.logger import setup_logger

    if args.print_plan:
        steps = plan(args.dry_run, os.path.abspath(args.output), args.device)
        for s in steps:
            print(f"{s.name:16s} {s.budget_s:4d} s  {s.what}\n    {shlex.join(s.argv)}")
        print(f"total budget {DRY_RUN_BUDGET_S if args.dry_run else FULL_BUDGET_S} s; steps "
              f"{sum(s.budget_s for s in steps)} s")
        return 0
    if not args.dry_run and args.device != "cpu" and not torch.cuda.is_available():
        parser.error("the full check needs a CUDA device (none is visible here); run it with --dry-run on the CPU")
    setup_logger()
    report = run_device_check(args.output, dry_run=args.dry_run, device=args.device, only=args.only)
    print(format_device_report(report))
    written = [os.path.join(args.output, name) for name in ("device_check.md", "device_check.json")]
    print(f"\nwritten: {', '.join(written)}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
