#!/usr/bin/env python
"""The main job: compare ViT initializations for detection, from one command.

    python tools/benchmark.py                      # the demo benchmark: GPU profile with CUDA, else CPU (< 15 min)
    python tools/benchmark.py --device cpu         # force the CPU profile (configs/benchmark/demo.py)
    python tools/benchmark.py --seeds 3            # each fine-tuning with 3 seeds: mean +- std, wider intervals
    python tools/benchmark.py --quick              # the same pipeline with short schedules, < 5 min
    python tools/benchmark.py --config-file configs/benchmark/coco_vit_b.py --print-commands --num-gpus 8
    python tools/benchmark.py --config-file configs/benchmark/coco_vit_b.py --launcher slurm --partition P \
        --nodes 1 --gpus-per-node 8 --time 72:00:00 [--account A --constraint C --qos Q --mem-gb M]
    python tools/benchmark.py --config-file configs/benchmark/coco_vit_b.py --collect-only
    python tools/benchmark.py --only mae random output_dir=./output/bench_try

Pre-trains what is missing, fine-tunes and evaluates one detector per initialization (reusing
finished runs, resuming unfinished ones), runs TIDE, and writes to the benchmark's output_dir:
results.md / .csv / .json, convergence.png, tide/ (per-run figures, tide_comparison.png, tide.md),
and report.md (which initialization beats random beyond the bootstrap uncertainty, and how fast).
Trailing key=value pairs override the benchmark dict (e.g. output_dir=...).

--launcher slurm submits each pre-training step and each initialization's fine-tuning (each seed)
as its own multi-GPU job with submitit, a fine-tuning after the pre-training it needs (afterok), and
records the job ids in OUTPUT_DIR/jobs.json; --collect-only then lists every job's state (failed
and pending ones with their log files) before gathering the finished runs. --launcher local does the
same with submitit's local executor (background processes on this machine), one process per job on
a CPU benchmark and one per visible GPU on a CUDA one unless --gpus-per-node / --num-gpus say otherwise.

One benchmark at a time writes into an output_dir (OUTPUT_DIR/benchmark.lock names the running one);
an initialization that fails is reported with the reason and the others go on.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tabulate import tabulate  # noqa: E402

from vitdet_bench.benchmark import Runner, load_benchmark, write_report  # noqa: E402
from vitdet_bench.benchmark.runner import (  # noqa: E402
    default_benchmark_file,
    default_num_gpus,
    resolve_benchmark_device,
)
from vitdet_bench.utils.cli import CommandLineParser  # noqa: E402
from vitdet_bench.engine.submit import SubmitError, SubmitOptions, add_launcher_arguments, launcher_requested  # noqa: E402
from vitdet_bench.utils.lock import LockError  # noqa: E402
from vitdet_bench.utils.logger import setup_logger  # noqa: E402


def main(argv=None) -> int:
    parser = CommandLineParser(description=__doc__, overrides_help="benchmark overrides (keys of the benchmark dict)")
    parser.add_argument("--config-file", default=None, help="a benchmark file (default: configs/benchmark/demo_gpu.py "
                        "when the device is CUDA, configs/benchmark/demo.py otherwise)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where every run trains (default: CUDA when available); also picks the demo profile")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="fine-tune each initialization with N seeds (default: the benchmark file's, 1)")
    parser.add_argument("--quick", action="store_true", help="configs/benchmark/demo_quick.py: short schedules")
    parser.add_argument("--only", nargs="+", metavar="INIT", help="run only these initializations (the report "
                        "still collects all); with --collect-only, report only these")
    parser.add_argument("--collect-only", action="store_true", help="run nothing; collect finished runs and report")
    parser.add_argument("--print-commands", action="store_true", help="print one shell job per initialization and exit")
    parser.add_argument("--num-gpus", type=int, default=None, help="GPUs (processes) per job in --print-commands "
                        "and --launcher's default --gpus-per-node. Default: 8 for --print-commands and --launcher "
                        "slurm; for --launcher local, 1 on a CPU benchmark and the visible GPU count on a CUDA one")
    parser.add_argument("--measure-cost", action="store_true", help="measure params / FLOPs / inference time of "
                        "finished runs that lack cost.json (also with --collect-only)")
    parser.add_argument("--no-progress", action="store_true", help="full console logs instead of progress bars")
    add_launcher_arguments(parser)
    args = parser.parse_args(argv)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    submit = launcher_requested(args)
    if submit and (args.collect_only or args.print_commands):
        parser.error("--launcher submits jobs; run --collect-only / --print-commands without it")
    if args.launcher == "slurm":
        # Slurm jobs run on the cluster's GPU nodes: "auto" is resolved there, not on this machine.
        device = "cuda" if args.device == "auto" else args.device
    else:
        device = resolve_benchmark_device(args.device)
    if args.config_file is None:
        args.config_file = default_benchmark_file(repo, device, args.quick)
    elif args.quick:
        parser.error("--quick selects configs/benchmark/demo_quick.py; do not combine it with --config-file")
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    spec = load_benchmark(args.config_file, args.opts)
    if args.device != "auto" or (spec.device == "auto" and args.launcher != "slurm"):
        spec.device = device
    if args.seeds is not None:
        spec.seeds = args.seeds
    runner = Runner(spec, progress=not args.no_progress)
    num_gpus = args.num_gpus if args.num_gpus is not None else default_num_gpus(args.launcher, spec.device)
    if args.print_commands:
        print("\n\n".join(runner.commands(num_gpus)))
        return 0
    setup_logger()
    try:
        lock = runner.lock().acquire()
    except LockError as e:  # another benchmark writes there: say so, no traceback
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    with lock:
        return _run(args, parser, spec, runner, submit, num_gpus)


def _run(args, parser, spec, runner, submit: bool, num_gpus: int) -> int:
    """Submit, run or collect, then report (with the benchmark's output_dir locked)."""
    if submit:
        try:
            records = runner.submit(SubmitOptions.from_args(args, default_gpus=num_gpus), only=args.only)
        except SubmitError as e:
            parser.exit(1, f"{parser.prog}: error: {e}\n")
        print(tabulate([[r.name, r.job_id, ", ".join(r.after) or "-", r.stdout] for r in records],
                       headers=["job", "id", "after", "log"], tablefmt="github"))
        print(f"\nRecorded in {runner.jobs_file}; when they are done: python tools/benchmark.py --config-file "
              f"{args.config_file} --collect-only")
        return 0
    start = time.perf_counter()
    jobs_unfinished = False
    if not args.collect_only:
        runner.run(only=args.only)
    else:
        only = set(args.only or [])
        statuses = [s for s in runner.job_statuses() if not only or s.record.name.split("/")[0] in only]
        if statuses:
            print(tabulate([[s.record.name, s.record.job_id, s.state, s.detail or "-",
                             s.record.stderr if s.state in ("failed", "pending", "unknown") else ""] for s in statuses],
                           headers=["job", "id", "state", "detail", "log"], tablefmt="github"))
            jobs_unfinished = any(s.state != "completed" for s in statuses)
    results = runner.collect(only=args.only if args.collect_only else None)
    if args.measure_cost:
        from vitdet_bench.benchmark import measure_cost

        for r in results:
            if r.status == "complete" and not r.cost:
                r.cost = measure_cost(r.run_dir)
    elapsed = time.perf_counter() - start
    out = write_report(spec, results, tide=spec.tide, elapsed_s=elapsed)
    elapsed = time.perf_counter() - start
    keep = [0, 2, 3, 4, 6, 7]  # init, box AP, mask AP, box delta, verdict, pre-training
    short = [[row[i] for i in keep] for row in out["summary_rows"]]
    print(f"\nBenchmark '{spec.name}' ({spec.profile or 'custom'} profile, device {spec.device}; "
          f"{'collected' if args.collect_only else 'ran'} in {elapsed / 60:.1f} min):\n")
    print(tabulate(short, headers=[out["summary_headers"][i] for i in keep], tablefmt="github"))
    print(f"\nReport: {os.path.join(spec.output_dir, 'report.md')} (table: results.md/.csv/.json, "
          f"convergence.png, tide/)")
    incomplete = [r for r in results if r.status != "complete"]
    for r in incomplete:
        print(f"  {r.name}: {r.status}: {'; '.join(r.problems)}")
    return 1 if incomplete or jobs_unfinished else 0


if __name__ == "__main__":
    sys.exit(main())
