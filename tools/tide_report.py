#!/usr/bin/env python
"""TIDE error analysis (tidecv) of one or more detection runs, box and mask.

    python tools/tide_report.py output/benchmark/demo/runs/mae output/benchmark/demo/runs/random --output tide_out
    python tools/tide_report.py --gt instances_val2017.json --results coco_instances_results.json --output tide_out

A RUN_DIR is a training output directory (its config.yaml names the evaluated dataset, its
inference/coco_instances_results.json holds the detections). Writes, into --output: tidecv's
summary figure per run and task, tide_comparison.png (grouped bars), tide.md and tide.json.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vitdet_bench.benchmark.report import gt_json_for_run  # noqa: E402
from vitdet_bench.evaluation.tide import plot_tide_comparison, run_tide, tide_markdown  # noqa: E402
from vitdet_bench.utils.cli import CommandLineParser  # noqa: E402


def main(argv=None) -> int:
    parser = CommandLineParser(description=__doc__, overrides=False)
    parser.add_argument("run_dirs", nargs="*", metavar="RUN_DIR")
    parser.add_argument("--gt", help="ground-truth COCO json (instead of RUN_DIRs)")
    parser.add_argument("--results", nargs="+", help="COCO results json(s) to compare against --gt")
    parser.add_argument("--tasks", nargs="+", default=["bbox", "segm"], choices=["bbox", "segm"])
    parser.add_argument("--output", default="tide_report")
    args = parser.parse_args(argv)
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        parser.error(f"--output {args.output} is a file, not a folder: give a folder for the figures and tables "
                     "(it is created when missing)")
    jobs = []
    for d in args.run_dirs:
        results = os.path.join(d, "inference", "coco_instances_results.json")
        if not os.path.isfile(os.path.join(d, "config.yaml")) or not os.path.isfile(results):
            parser.error(f"{d} is not a finished run directory (needs config.yaml and {os.path.relpath(results, d)})")
        jobs.append((os.path.basename(os.path.normpath(d)), gt_json_for_run(d), results))
    if args.results:
        if not args.gt:
            parser.error("--results needs --gt")
        jobs += [(os.path.splitext(os.path.basename(r))[0], args.gt, r) for r in args.results]
    if not jobs:
        parser.error("give RUN_DIRs, or --gt and --results")
    names = [j[0] for j in jobs]
    if len(set(names)) != len(names):
        parser.error(f"runs need distinct names (directory basenames): {names}")
    out = {}
    for name, gt, res in jobs:
        out[name] = run_tide(gt, res, tasks=args.tasks, plot_dir=os.path.join(args.output, name), name=name)
    os.makedirs(args.output, exist_ok=True)
    plot_tide_comparison(out, os.path.join(args.output, "tide_comparison.png"), tasks=args.tasks)
    with open(os.path.join(args.output, "tide.json"), "w") as f:
        json.dump(out, f, indent=1)
    text = tide_markdown(out)
    with open(os.path.join(args.output, "tide.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"Figures and tables in {args.output}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
