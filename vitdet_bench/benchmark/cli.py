"""``tools/benchmark.py``: the main job, compare ViT initializations for detection, from one command.

    python tools/benchmark.py                      # the demo: GPU profile with CUDA, else CPU (25 min on 2 cores)
    python tools/benchmark.py --device cpu         # force the CPU profile (configs/benchmark/demo.py)
    python tools/benchmark.py --seeds 3            # each fine-tuning with 3 seeds: mean +- std, wider intervals
    python tools/benchmark.py --quick              # the same pipeline with short schedules, 4 min on 2 cores
    python tools/benchmark.py --config-file configs/benchmark/coco_vit_b.py --print-commands --num-gpus 8
    python tools/benchmark.py --config-file configs/benchmark/coco_vit_b.py --launcher slurm --partition P \
        --nodes 1 --gpus-per-node 8 --time 72:00:00 [--account A --constraint C --qos Q --mem-gb M]
    python tools/benchmark.py --config-file configs/benchmark/coco_vit_b.py --collect-only
    python tools/benchmark.py --only mae random output_dir=./output/bench_try
    python tools/benchmark.py --search none        # each init with its recipe's lr / wd / drop path (no tuning)

Pre-trains what is missing, probes every initialization's encoder, tunes each by the paper's
protocol (the benchmark file's search: lr x weight decay grid, then drop path, selected on a split
held out from training), fine-tunes and evaluates one detector per initialization (reusing
finished runs, resuming unfinished ones), runs TIDE, and writes to the benchmark's output_dir:
summary.md / .csv / .json, results.md / .csv / .json, convergence.png, search/ (grid heat maps),
pretrain_loss.png, tide/ and report.md (which initialization beats random beyond the bootstrap
uncertainty, and how fast; whether each encoder learned; how each was tuned; wall time per stage).
Trailing key=value pairs override the benchmark dict (e.g. output_dir=..., search.mode=none).

--launcher slurm submits each pre-training step, each search point and each initialization's
fine-tuning (each seed) as its own multi-GPU job with submitit, each after the jobs it needs, and
records the job ids in OUTPUT_DIR/jobs.json; a small selection job per search round (one CPU, no
GPU; --search-step INIT) reads the round's points, failed ones reported, and submits the next round
or the final runs. --collect-only then lists every job's state (failed and pending ones with their
log files) before gathering the finished runs. --launcher local does the same with submitit's local
executor (background processes on this machine), one process per job on a CPU benchmark and one
per visible GPU on a CUDA one unless --gpus-per-node / --num-gpus say otherwise.

One benchmark at a time writes into an output_dir (OUTPUT_DIR/benchmark.lock names the running one);
an initialization that fails is reported with the reason and the others go on.
"""

from __future__ import annotations

import os
import time

from tabulate import tabulate

from ..engine.submit import SubmitError, SubmitOptions, add_launcher_arguments, launcher_requested
from ..utils.cli import CommandLineParser
from ..utils.lock import LockError
from ..utils.logger import setup_logger
from .report import write_report
from .runner import Runner
from .search import SEARCH_MODES
from .spec import default_benchmark_file, default_num_gpus, load_benchmark, resolve_benchmark_device

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line), then run, submit or collect; the exit status."""
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
    parser.add_argument("--search", choices=SEARCH_MODES, default=None,
                        help="the tuning protocol: grid (lr x weight decay), full (then drop path) or none (each init "
                        "keeps its recipe's values); default: the benchmark file's search.mode")
    parser.add_argument("--search-step", metavar="INIT", default=None,
                        help="(a cluster's selection job) read INIT's finished search points and submit the next round "
                        "or the final runs; without --launcher, run them here")
    add_launcher_arguments(parser)
    args = parser.parse_args(argv)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
    if args.search is not None:
        spec.search.mode = args.search
        spec.search.check("--search")
    runner = Runner(spec, progress=not args.no_progress)
    num_gpus = args.num_gpus if args.num_gpus is not None else default_num_gpus(args.launcher, spec.device)
    if args.print_commands:
        try:
            print("\n\n".join(runner.commands(num_gpus)))
        except ValueError as e:  # a benchmark that cannot be planned yet (e.g. ViT-L's reuse of ViT-B's choice)
            parser.exit(1, f"{parser.prog}: error: {e}\n")
        return 0
    setup_logger()
    if args.search_step:
        return _search_step(args, parser, runner, submit, num_gpus)
    try:
        lock = runner.lock().acquire()
    except LockError as e:  # another benchmark writes there: say so, no traceback
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    with lock:
        return _run(args, parser, spec, runner, submit, num_gpus)


def _step_argv(args, options: SubmitOptions) -> list[str]:
    """The command line a selection step runs with: this benchmark, its overrides, the launcher."""
    argv = ["--config-file", args.config_file, "--device", args.device, "--no-progress", *options.launcher_argv()]
    if args.seeds is not None:
        argv += ["--seeds", str(args.seeds)]
    if args.search is not None:
        argv += ["--search", args.search]
    return argv + list(args.opts)


def _search_step(args, parser, runner: Runner, submit: bool, num_gpus: int) -> int:
    """``--search-step INIT``: one init's selection (a cluster job, or the rest of its search here)."""
    options = SubmitOptions.from_args(args, default_gpus=num_gpus) if submit else None
    try:
        records = runner.search_step(args.search_step, options, _step_argv(args, options) if options else None)
    except SubmitError as e:
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    for r in records:
        print(f"{r.name}: job {r.job_id}, log {r.stdout}")
    return 0


def _run(args, parser, spec, runner, submit: bool, num_gpus: int) -> int:
    """Submit, run or collect, then report (with the benchmark's output_dir locked)."""
    if submit:
        try:
            options = SubmitOptions.from_args(args, default_gpus=num_gpus)
            records = runner.submit(options, only=args.only, step_argv=_step_argv(args, options))
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
    only = args.only if args.collect_only else None
    results = runner.collect(only=only)
    if args.measure_cost:
        from .cost import measure_cost

        for r in results:
            if r.status == "complete" and not r.cost:
                r.cost = measure_cost(r.run_dir)
    elapsed = time.perf_counter() - start
    out = write_report(spec, results, tide=spec.tide, elapsed_s=elapsed, extras=runner.collect_extras(only))
    elapsed = time.perf_counter() - start
    keep = [0, 2, 4, 6, 7, 8, 9]  # init, box AP, box delta, verdict, probe, lr / wd / dp, pre-training
    short = [[row[i] for i in keep] for row in out["summary_rows"]]
    print(f"\nBenchmark '{spec.name}' ({spec.profile or 'custom'} profile, device {spec.device}; "
          f"{'collected' if args.collect_only else 'ran'} in {elapsed / 60:.1f} min):\n")
    print(tabulate(short, headers=[out["summary_headers"][i] for i in keep], tablefmt="github"))
    sets = out.get("evaluation") or {}
    if sets.get("val_images"):
        print(f"\nAPs and their intervals: the {sets['val_images']} images of {sets['val_dataset']}"
              + (f"; convergence curve: the {sets['curve_images']} images of {sets['curve_dataset']}"
                 if sets.get("curve_dataset") != sets.get("val_dataset") else "") + ".")
    print(f"\nReport: {os.path.join(spec.output_dir, 'report.md')} (tables: summary / results .md/.csv/.json, "
          f"convergence.png, search/, pretrain_loss.png, tide/)")
    incomplete = [r for r in results if r.status != "complete"]
    for r in incomplete:
        print(f"  {r.name}: {r.status}: {'; '.join(r.problems)}")
    return 1 if incomplete or jobs_unfinished else 0

