"""The benchmark runner: pre-train what is missing, probe every initialization's encoder, tune each
one by the paper's protocol, fine-tune it, evaluate, and collect everything into one report
(``tools/benchmark.py``; the benchmark file is read by :mod:`.spec`).

Everything is idempotent: a finished pre-training, search point or detection run is reused, an
unfinished one resumes from its last checkpoint, and a pre-training product made by an identical
step before (same config, code and seed) is taken from the content cache
(:mod:`.product_cache`). The tuning search (:mod:`.search`) runs each init's points under
``OUTPUT/search/<init>/``; the final run then uses the chosen lr / weight decay / drop path. On a
cluster, ``--launcher slurm`` submits each pre-training step, each search point and each
fine-tuning as its own job: a small selection job reads each round's points and submits the next
round or the final runs (:meth:`Runner.search_step`); everything is recorded in ``jobs.json``.
``--print-commands`` prints the same jobs as shell commands, and ``--collect-only`` later reports
the jobs and gathers the finished runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from ..config import LazyConfig
from ..engine.submit import JobRecord, JobSpec, JobStatus, SubmitOptions, job_status, read_jobs, submit_jobs, write_jobs
from .collect import RunResult, collect_run
from .scheduler import Task, run_tasks, threads_per_run
from .search import SearchPlan, SearchPoint, find_drop_path_key, plan_search, plan_to_dict, reused_values, search_dir
from .spec import (
    BenchmarkSpec,
    Initialization,
    PretrainStep,
    default_benchmark_file,
    default_num_gpus,
    device_description,
    load_benchmark,
    read_export_meta,
    resolve_benchmark_device,
)

__all__ = ["BENCHMARK_LOCK", "BenchmarkSpec", "Initialization", "PretrainStep", "Runner", "default_benchmark_file",
           "default_num_gpus", "device_description", "load_benchmark", "read_export_meta", "resolve_benchmark_device"]

logger = logging.getLogger("vitdet_bench.benchmark")

BENCHMARK_LOCK = "benchmark.lock"  # held in output_dir while a benchmark runs, collects or submits there
FAILED_FILE = "FAILED.json"  # in a search point's directory: it ran and failed (left out of the selection)
STAGES_FILE = "stages.json"  # wall time per stage of the runs this output_dir holds


def _args(config: str, opts: list[str], resume: bool = True) -> argparse.Namespace:
    return argparse.Namespace(config_file=config, opts=list(opts), resume=resume, eval_only=False, num_gpus=1,
                              num_machines=1, machine_rank=0, dist_url="auto")


class _ProgressBar:
    """A tqdm bar over a training run's iterations (an engine hook)."""

    def __init__(self, desc: str, enabled: bool) -> None:
        self.desc = desc
        self.enabled = enabled

    def __call__(self, model, trainer) -> list:
        from ..engine.train_loop import HookBase

        desc, enabled = self.desc, self.enabled

        class Bar(HookBase):
            def before_train(self) -> None:
                from tqdm import tqdm

                self.bar = tqdm(total=self.trainer.max_iter, initial=self.trainer.start_iter, desc=desc,
                                disable=not enabled, leave=False, dynamic_ncols=True, file=sys.stderr)

            def after_step(self) -> None:
                self.bar.update(1)
                latest = self.trainer.storage.latest()
                if "total_loss" in latest:
                    self.bar.set_postfix(loss=f"{latest['total_loss'][0]:.3f}", refresh=False)

            def after_train(self) -> None:
                self.bar.close()

        return [Bar()]


class Runner:
    """Runs and collects one :class:`BenchmarkSpec`.

    Args:
        spec: the benchmark.
        progress: tqdm bars (and a quiet console: each run's log.txt keeps the full log).
    """

    def __init__(self, spec: BenchmarkSpec, progress: bool = True) -> None:
        self.spec = spec
        self.progress = progress
        self.failures: dict[str, str] = {}  # run name -> why :meth:`run` could not finish it
        self._final_iters: dict[str, int] = {}

    def lock(self):
        """The lock of ``output_dir`` (a :class:`~vitdet_bench.utils.lock.DirectoryLock`, to hold
        with ``with``): one benchmark process writes there at a time."""
        from ..utils.lock import DirectoryLock

        return DirectoryLock(self.spec.output_dir, BENCHMARK_LOCK, "benchmark",
                             hint="or give another output_dir=")

    # --- what runs --------------------------------------------------------------------------
    def _device_overrides(self) -> list[str]:
        return [] if self.spec.device == "auto" else [f"train.device={self.spec.device}"]

    def _step_overrides(self, init: Initialization, step: PretrainStep) -> list[str]:
        dirs = {s.name: self.spec.pretrain_dir(init.name, s.name) for s in init.pretrain}
        opts = [o.format(**dirs) for o in list(self.spec.pretrain_overrides) + list(step.overrides)]
        return opts + self._device_overrides() + [f"train.output_dir={dirs[step.name]}"]

    def checkpoint_for(self, init: Initialization) -> str:
        if init.checkpoint:
            return init.checkpoint
        if init.pretrain:
            return os.path.join(self.spec.pretrain_dir(init.name, init.pretrain[-1].name), "backbone_final.pth")
        return ""

    def _base_overrides(self, init: Initialization) -> list[str]:
        """What every detection run of ``init`` gets: the benchmark's, the init's, the device, its backbone."""
        return (list(self.spec.detection_overrides) + list(init.overrides) + self._device_overrides()
                + [f"train.init_checkpoint={self.checkpoint_for(init)}"])

    def detection_overrides(self, init: Initialization, seed: int = 0) -> list[str]:
        """The final run's overrides: with the search's chosen lr / weight decay / drop path."""
        # Seed 0 keeps the recipe's own train.seed; the extra runs of --seeds get 1, 2, ...
        seed_opts = [f"train.seed={seed}"] if seed else []
        chosen = self.search_choice(init) if self.spec.search.mode != "none" else None
        tuned = [f"optimizer.lr={chosen['lr']!r}", f"optimizer.weight_decay={chosen['weight_decay']!r}",
                 f"{self.drop_path_key(init)}={chosen['drop_path']!r}"] if chosen else []
        return (self._base_overrides(init) + tuned + seed_opts
                + [f"train.output_dir={self.spec.run_dir(init.name, seed)}"])

    def point_dir(self, init: Initialization, point: SearchPoint) -> str:
        return os.path.join(search_dir(self.spec.output_dir, init.name), point.name)

    def point_overrides(self, init: Initialization, point: SearchPoint) -> list[str]:
        """A search point: the init's run with the point's values, schedule and splits."""
        return (self._base_overrides(init) + point.overrides(self.spec.search, self.drop_path_key(init))
                + ["train.eval_subset=None"]
                + [f"train.output_dir={self.point_dir(init, point)}"])

    # --- the search ---------------------------------------------------------------------------
    def drop_path_key(self, init: Initialization) -> str:
        """Where the search sets drop path in ``init``'s config (``search.drop_path_key``, or found)."""
        if self.spec.search.drop_path_key != "auto":
            return self.spec.search.drop_path_key
        key = find_drop_path_key(LazyConfig.load(init.config).model)
        if key is None:
            raise ValueError(f"initialization {init.name}: {init.config} has no drop_path_rate under model; give "
                             "search.drop_path_key=KEY")
        return key

    def final_iters(self, init: Initialization) -> int:
        """The init's final schedule (its config with the benchmark's overrides): search stages are fractions of it."""
        if init.name not in self._final_iters:
            cfg = LazyConfig.apply_overrides(LazyConfig.load(init.config), self._base_overrides(init))
            self._final_iters[init.name] = int(cfg.train.max_iter)
        return self._final_iters[init.name]

    def _point_result(self, init: Initialization, point: SearchPoint) -> tuple[bool, float | None, dict]:
        """``(finished, metric, all final metrics)`` of one point from its directory."""
        directory = self.point_dir(init, point)
        if os.path.isfile(os.path.join(directory, FAILED_FILE)):
            return True, None, {}
        r = collect_run(point.name, directory)
        if r.status != "complete":
            return False, None, {}
        task, metric = self.spec.search.metric.split("/", 1)
        flat = {f"{t}/{m}": v for t, ms in r.metrics.items() for m, v in ms.items()}
        return True, r.metrics.get(task, {}).get(metric), flat

    def search_state(self, init: Initialization, ended: set[str] | None = None) -> SearchPlan:
        """Where ``init``'s search stands, read from its points' directories. ``ended`` names points
        whose jobs are over: one of them without a complete run is marked failed (its log named)."""
        spec = self.spec.search
        reused = reused_values(spec, init.name)
        metrics: dict[str, float | None] = {}
        finished: set[str] = set()
        is_random = not init.checkpoint and not init.pretrain
        while True:  # replay the protocol, reading each point the plan names
            plan = plan_search(spec, self.final_iters(init), is_random, metrics, finished, reused)
            fresh = [p for p in plan.pending if p.name not in finished]
            progressed = False
            for p in fresh:
                done, metric, _ = self._point_result(init, p)
                if not done and ended is not None and p.name in ended:
                    self._mark_failed(init, p, "its job ended without a complete run")
                    done, metric = True, None
                if done:
                    finished.add(p.name)
                    metrics[p.name] = metric
                    progressed = True
            if not progressed:
                return plan

    def search_choice(self, init: Initialization) -> dict | None:
        """The chosen ``{"lr", "weight_decay", "drop_path"}``, or ``None`` while the search is unfinished."""
        try:
            return self.search_state(init).chosen
        except RuntimeError:  # every point failed
            return None

    def _mark_failed(self, init: Initialization, point: SearchPoint, why: str) -> None:
        directory = self.point_dir(init, point)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, FAILED_FILE), "w", encoding="utf-8") as f:
            json.dump({"point": point.name, "why": why, "log": os.path.join(directory, "log.txt")}, f, indent=1)
        logger.warning("Search point %s/%s failed (%s); the selection uses the other points",
                       init.name, point.name, why)

    def search_summary(self, init: Initialization) -> dict | None:
        """``summary.json``'s ``search`` entry of ``init`` (``None`` without a search)."""
        if self.spec.search.mode == "none":
            return None
        try:
            plan = self.search_state(init)
        except RuntimeError as e:
            return {"protocol": self.spec.search.describe(), "error": str(e), "points": [], "chosen": None}
        dirs, costs, extra = {}, {}, {}
        for p, _ in plan.points:
            directory = self.point_dir(init, p)
            dirs[p.name] = directory
            extra[p.name] = self._point_result(init, p)[2]
            info = os.path.join(directory, "run_info.json")
            if os.path.isfile(info):
                with open(info, encoding="utf-8") as f:
                    costs[p.name] = json.load(f).get("train_time_s")
        return plan_to_dict(plan, self.spec.search, dirs, costs, extra)

    # --- jobs for a cluster -------------------------------------------------------------------
    def _procs(self, num_gpus: int, num_machines: int) -> list[str]:
        return ["--num-gpus", str(num_gpus)] + (["--num-machines", str(num_machines)] if num_machines > 1 else [])

    def _pretrain_jobs(self, init: Initialization, procs: list[str]) -> tuple[list[JobSpec], list[str]]:
        # A step is done when its product exists or a later step's does (nothing needs it then).
        self._fetch_cached_products(init)
        done, later = [], False
        for step in reversed(init.pretrain):
            product = os.path.join(self.spec.pretrain_dir(init.name, step.name), step.product)
            later = later or os.path.isfile(product)
            done.insert(0, later)
        jobs, previous = [], []
        for step, step_done in zip(init.pretrain, done):
            name = f"{init.name}/pretrain-{step.name}"
            jobs.append(JobSpec(name, step.tool, ["--config-file", step.config, *procs, "--resume",
                                                  *self._step_overrides(init, step)],
                                self.spec.pretrain_dir(init.name, step.name), list(previous), done=step_done))
            previous = [name]
        return jobs, previous

    def _final_jobs(self, init: Initialization, procs: list[str], after: list[str]) -> list[JobSpec]:
        jobs = []
        for seed in range(self.spec.seeds):
            run_dir = self.spec.run_dir(init.name, seed)
            jobs.append(JobSpec(f"{init.name}/finetune" + (f"-seed{seed}" if seed else ""), "train",
                                ["--config-file", init.config, *procs, "--resume",
                                 *self.detection_overrides(init, seed)],
                                run_dir, list(after), done=collect_run(init.name, run_dir).status == "complete"))
        return jobs

    def _round_jobs(self, init: Initialization, plan: SearchPlan, procs: list[str], after: list[str],
                    step_argv: list[str]) -> list[JobSpec]:
        """A search round's points, then the selection step that reads them (after all of them,
        failed or not) and submits what comes next."""
        jobs = [JobSpec(f"{init.name}/search-{p.name}", "train",
                        ["--config-file", init.config, *procs, "--resume", *self.point_overrides(init, p)],
                        self.point_dir(init, p), list(after)) for p in plan.pending]
        jobs.append(JobSpec(f"{init.name}/search-select-{len(plan.points)}", "benchmark",
                            [*step_argv, "--search-step", init.name], search_dir(self.spec.output_dir, init.name),
                            [j.name for j in jobs], after_any=True, light=True))
        return jobs

    def jobs(self, num_gpus: int = 8, num_machines: int = 1, only: list[str] | None = None,
             step_argv: list[str] | None = None) -> list[JobSpec]:
        """The jobs of a submission, each after the jobs it needs (``after``): every pre-training
        step; without a search, every (initialization, seed) fine-tuning; with one, the current
        round of each init's search points and a selection step after them (which submits the next
        round or the finals). ``done`` marks what exists already. What :meth:`commands` prints and
        ``tools/benchmark.py --launcher slurm`` submits."""
        procs = self._procs(num_gpus, num_machines)
        step_argv = step_argv if step_argv is not None else ["--config-file", self.spec.source_file]
        jobs: list[JobSpec] = []
        for init in self._selected(only):
            pre, previous = self._pretrain_jobs(init, procs)
            jobs += pre
            if self.spec.search.mode == "none":
                jobs += self._final_jobs(init, procs, previous)
                continue
            plan = self.search_state(init)
            if plan.chosen is not None:
                jobs += self._final_jobs(init, procs, previous)
            else:
                jobs += self._round_jobs(init, plan, procs, previous, step_argv)
        return jobs

    def commands(self, num_gpus: int = 8, num_machines: int = 1) -> list[str]:
        """Shell commands that do what :meth:`run` does, one line per initialization (for a cluster)."""
        jobs = self.jobs(num_gpus, num_machines)
        lines = []
        for init in self.spec.inits:
            parts = [j.command for j in jobs if j.name.split("/")[0] == init.name]
            lines.append(f"# {init.name}: {init.source}\n" + " && \\\n  ".join(parts))
        lines.append(f"# then: python tools/benchmark.py --config-file {self.spec.source_file} --collect-only")
        return lines

    def _selected(self, only: list[str] | None) -> list[Initialization]:
        unknown = set(only or []) - {i.name for i in self.spec.inits}
        if unknown:
            raise ValueError(f"--only {sorted(unknown)}: not initializations of {self.spec.name} "
                             f"({[i.name for i in self.spec.inits]})")
        return [i for i in self.spec.inits if not only or i.name in only]

    def submit(self, options: SubmitOptions, only: list[str] | None = None,
               step_argv: list[str] | None = None) -> list[JobRecord]:
        """Submit every missing job (:meth:`jobs`) with submitit, each after the jobs it needs, and
        record them in ``OUTPUT_DIR/jobs.json`` (jobs of an earlier submission that are still pending
        or running are kept, not submitted again). ``step_argv``: the selection steps' command line
        (the benchmark file, its overrides and the launcher flags)."""
        path = self.jobs_file
        known = {r.name: r for r in read_jobs(path)}
        jobs = self.jobs(options.gpus_per_node, options.nodes, only, step_argv)
        for job in jobs:
            if job.done:
                logger.info("%s: done (%s); not submitted", job.name, job.output_dir)
        records = submit_jobs(jobs, options, os.path.join(self.spec.output_dir, "submitit"), known=known)
        write_jobs(path, records)
        return records

    def search_step(self, init_name: str, options: SubmitOptions | None = None,
                    step_argv: list[str] | None = None) -> list[JobRecord]:
        """The selection step of ``init``'s search (``tools/benchmark.py --search-step INIT``).

        Read the finished points (a point whose job ended without a complete run is marked failed,
        naming its log); with ``options`` (a cluster), submit the next round's points and another
        step after them, or, when the protocol is complete, the final fine-tunings; without, run the
        remaining rounds and the finals here.
        """
        init = self._selected([init_name])[0]
        if options is None:
            self._search_and_finetune(init)
            return []
        ended = {r.name.split("/search-", 1)[1] for r in read_jobs(self.jobs_file)
                 if r.name.startswith(f"{init.name}/search-") and job_status(r).finished}
        plan = self.search_state(init, ended=ended)
        procs = options.tool_args()
        if plan.chosen is None:
            jobs = self._round_jobs(init, plan, procs, [], step_argv or ["--config-file", self.spec.source_file])
            logger.info("Search %s: %d points to run next", init.name, len(plan.pending))
        else:
            jobs = self._final_jobs(init, procs, [])
            logger.info("Search %s chose %s; submitting the final run(s)", init.name, plan.chosen)
        records = submit_jobs(jobs, options, os.path.join(self.spec.output_dir, "submitit"),
                              known={r.name: r for r in read_jobs(self.jobs_file)})
        write_jobs(self.jobs_file, records)
        return records

    @property
    def jobs_file(self) -> str:
        """``OUTPUT_DIR/jobs.json``: the submitted jobs (see :mod:`vitdet_bench.engine.submit`)."""
        return os.path.join(self.spec.output_dir, "jobs.json")

    def job_statuses(self) -> list[JobStatus]:
        """The state of every job in ``jobs.json`` ([] when nothing was submitted)."""
        return [job_status(r) for r in read_jobs(self.jobs_file)]

    # --- running here ---------------------------------------------------------------------------
    def run(self, only: list[str] | None = None) -> None:
        """Run every missing piece, sequentially: pre-training, probes, then per initialization its
        search and final fine-tuning(s). A step that fails is logged and recorded in
        :attr:`failures` (so :meth:`collect` reports it), the initialization's later steps are
        skipped, and the other initializations go on; Ctrl-C and SIGTERM stop everything."""
        from tqdm import tqdm

        inits = self._selected(only)
        self._t0 = time.time()
        if self.spec.concurrent_runs > 1:
            self._run_concurrent(inits)
            return
        if self.progress:
            os.environ["VITDET_BENCH_CONSOLE_LEVEL"] = "WARNING"
        stages = [(i, s) for i in inits for s in i.pretrain] + [(i, "probe") for i in inits if self.spec.probe]
        stages += [(i, "finetune") for i in inits]
        overall = tqdm(total=len(stages), desc=f"benchmark {self.spec.name}", disable=not self.progress,
                       dynamic_ncols=True, file=sys.stderr)
        blocked: dict[str, str] = {}  # init -> why its fine-tuning cannot run (a failed pre-training)
        try:
            for init, stage in stages:
                label = f"{init.name} pre-training {stage.name}" if isinstance(stage, PretrainStep) else \
                    f"{init.name} {'probe' if stage == 'probe' else 'fine-tuning'}"
                if init.name in blocked:
                    if stage == "finetune":
                        for seed in range(self.spec.seeds):
                            self.failures[self._run_name(init, seed)] = blocked[init.name]
                    overall.update(1)
                    continue
                overall.set_postfix_str(label)
                try:
                    if isinstance(stage, PretrainStep):
                        self._pretrain(init, stage)
                    elif stage == "probe":
                        self._timed(f"probe {init.name}", lambda: self.probe(init))
                    else:
                        self._search_and_finetune(init, first=init is inits[0])
                except Exception as e:  # one initialization's failure must not cost the others
                    why = f"{label} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    logger.error("%s; the benchmark goes on with the other initializations", why)
                    if isinstance(stage, PretrainStep):
                        where = os.path.join(self.spec.pretrain_dir(init.name, stage.name), "log.txt")
                        blocked[init.name] = f"not fine-tuned: {why} (see {where})"
                    elif stage == "finetune":
                        for seed in range(self.spec.seeds):
                            where = os.path.join(self.spec.run_dir(init.name, seed), "log.txt")
                            self.failures.setdefault(self._run_name(init, seed), f"{why} (see {where})")
                overall.update(1)
        finally:
            overall.close()
            os.environ.pop("VITDET_BENCH_CONSOLE_LEVEL", None)

    # several runs at once (benchmark.concurrent_runs) -----------------------------------------------
    def _run_concurrent(self, inits: list[Initialization]) -> None:
        """:meth:`run` with ``concurrent_runs`` processes at a time (:mod:`.scheduler`): each
        initialization's pre-training chain, search rounds and final runs in order, the
        initializations side by side; the probes and the cost measurements here, in this process."""
        from tqdm import tqdm

        slots = self.spec.concurrent_runs
        self._prepare_data(inits)
        bar = tqdm(total=0, desc=f"benchmark {self.spec.name} ({slots} runs at a time)", disable=not self.progress,
                   dynamic_ncols=True, file=sys.stderr)

        def progress(finished: int, known: int, running: list[str]) -> None:
            bar.total = max(known, finished)
            bar.n = finished
            bar.set_postfix_str(", ".join(running), refresh=True)

        try:
            run_tasks([self._stream(init) for init in inits], slots, threads_per_run(slots), progress)
        finally:
            bar.close()
        for init in inits:
            if self.spec.cost and collect_run(init.name, self.spec.run_dir(init.name)).status == "complete":
                self._measure_cost(init, first=init is inits[0])

    def _prepare_data(self, inits: list[Initialization]) -> None:
        """Draw what the runs will read (the demo pool, the demo detection splits) once, here, before
        the processes start: each would otherwise draw the same images."""
        from ..config import instantiate
        from ..data.demo import ensure_demo_dataset

        for init in inits:
            for step in init.pretrain:
                cfg = LazyConfig.apply_overrides(LazyConfig.load(step.config), self._step_overrides(init, step))
                instantiate(cfg.dataloader.train.dataset)  # draws a demo pool; lists a folder
        names = {str(LazyConfig.load(i.config).dataloader.train.dataset.names) for i in inits}
        if any(n.startswith("demo_") for n in names):
            ensure_demo_dataset()

    def _task(self, init: Initialization, name: str, tool: str, config: str, overrides: list[str], run_dir: str,
              done, stages_left: int) -> Task:
        return Task(f"{init.name}/{name}", tool, ["--config-file", config, "--num-gpus", "1", "--resume",
                                                  *overrides, *self._worker_share(config, overrides)],
                    os.path.join(run_dir, "console.log"), done, priority=stages_left)

    def _worker_share(self, config: str, overrides: list[str]) -> list[str]:
        """Each of the concurrent runs gets its share of the config's data-loading workers."""
        cfg = LazyConfig.apply_overrides(LazyConfig.load(config), overrides)
        workers = int(cfg.dataloader.train.get("num_workers", 0) or 0)
        share = workers // self.spec.concurrent_runs
        return [f"dataloader.train.num_workers={share}"] if share != workers else []

    def _stream(self, init: Initialization):
        """The tasks of one initialization, batch by batch (see :class:`.scheduler.TaskQueue`)."""
        from .product_cache import publish_product

        # Stages still to run after the pre-training steps: the search (when on) and the final runs.
        tail = 1 + (self.spec.search.mode != "none")
        for index, step in enumerate(init.pretrain):
            out = self.spec.pretrain_dir(init.name, step.name)
            self._fetch_cached_products(init)
            if self._reused(init, step):
                continue
            outcome: dict = {}

            def step_done(ok: bool, wall: float, step=step, out=out, outcome=outcome) -> None:
                outcome["ok"] = ok and os.path.isfile(os.path.join(out, step.product))
                self.record_stage(f"pre-train {init.name}/{step.name}", wall)
                if outcome["ok"] and self.spec.reuse_pretraining:
                    publish_product(self._product_keys(init)[step.name], out, step.product, wall)

            yield [self._task(init, f"pretrain-{step.name}", step.tool, step.config, self._step_overrides(init, step),
                              out, step_done, len(init.pretrain) - index + tail)]
            if not outcome.get("ok"):
                why = (f"not fine-tuned: {init.name} pre-training {step.name} failed "
                       f"(see {os.path.join(out, 'log.txt')})")
                for seed in range(self.spec.seeds):
                    self.failures[self._run_name(init, seed)] = why
                return
        if self.spec.probe:
            self._timed(f"probe {init.name}", lambda: self.probe(init))
        if self.spec.search.mode != "none":
            start, attempted = time.perf_counter(), set()
            while True:
                plan = self.search_state(init)
                if plan.chosen is not None:
                    break
                batch = []
                for point in plan.pending:
                    if point.name in attempted:
                        problems = collect_run(point.name, self.point_dir(init, point)).problems
                        self._mark_failed(init, point, "its run ended incomplete: " + "; ".join(problems))
                        continue
                    attempted.add(point.name)
                    directory = self.point_dir(init, point)

                    def point_done(ok: bool, wall: float, point=point, directory=directory) -> None:
                        self._write_run_info(init, directory, 0, wall)
                        if not ok:
                            log = os.path.join(directory, "log.txt")
                            self._mark_failed(init, point, f"its process failed (see {log})")

                    batch.append(self._task(init, f"search-{point.name}", "train", init.config,
                                            self.point_overrides(init, point), directory, point_done, 2))
                if batch:
                    yield batch
            if attempted:
                self.record_stage(f"search {init.name}", time.perf_counter() - start,
                                  f"{len(plan.points)} points, chose lr {plan.chosen['lr']:.3g}, wd "
                                  f"{plan.chosen['weight_decay']:.3g}, dp {plan.chosen['drop_path']:g}")
        finals = []
        for seed in range(self.spec.seeds):
            run_dir = self.spec.run_dir(init.name, seed)
            if collect_run(init.name, run_dir).status == "complete":
                continue
            label = f"fine-tune {init.name}" + (f" seed {seed}" if seed else "")

            def final_done(ok: bool, wall: float, seed=seed, run_dir=run_dir, label=label) -> None:
                self._write_run_info(init, run_dir, seed, wall)
                self.record_stage(label, wall)
                if not ok:
                    self.failures[self._run_name(init, seed)] = (f"{label} failed (see "
                                                                 f"{os.path.join(run_dir, 'log.txt')})")

            finals.append(self._task(init, "finetune" + (f"-seed{seed}" if seed else ""), "train", init.config,
                                     self.detection_overrides(init, seed), run_dir, final_done, 1))
        if finals:
            yield finals

    def _write_run_info(self, init: Initialization, run_dir: str, seed: int, wall: float) -> None:
        """``run_info.json`` of a run trained in another process (as :meth:`_train_detector` writes it)."""
        if not os.path.isdir(run_dir):
            return
        from ..data.catalog import load_dataset

        images = None
        try:
            cfg = LazyConfig.load(os.path.join(run_dir, "config.yaml"))
            images = len(load_dataset(cfg.dataloader.train.dataset.names, filter_empty=True)[0])
        except Exception:  # the size is for the epochs axis only
            pass
        info = {"config_file": init.config, "source": init.source, "init_checkpoint": self.checkpoint_for(init),
                "seed_index": seed, "device_info": device_description(self._cost_device()), "train_time_s": wall,
                "train_images": images, "concurrent_runs": self.spec.concurrent_runs}
        with open(os.path.join(run_dir, "run_info.json"), "w") as f:
            json.dump(info, f, indent=1)

    def _reused(self, init: Initialization, step: PretrainStep) -> bool:
        """Whether ``step``'s product is there (trained before, or taken from the cache: then say so)."""
        from .product_cache import REUSED_FILE

        out = self.spec.pretrain_dir(init.name, step.name)
        if not os.path.isfile(os.path.join(out, step.product)):
            return False
        stage = f"pre-train {init.name}/{step.name}"
        if os.path.isfile(os.path.join(out, REUSED_FILE)) and stage not in {s["stage"] for s in self.stages()}:
            with open(os.path.join(out, REUSED_FILE), encoding="utf-8") as f:
                made = json.load(f)
            self.record_stage(stage, 0.0, f"reused from the cache (made {made.get('made')}, "
                                          f"{(made.get('wall_s') or 0) / 60:.1f} min then)")
        return True

    @staticmethod
    def _run_name(init: Initialization, seed: int) -> str:
        return init.name if seed == 0 else f"{init.name}_seed{seed}"

    def _timed(self, stage: str, fn, note: str = ""):
        """Run ``fn`` and record its wall time in ``stages.json`` under ``stage``."""
        start = time.perf_counter()
        out = fn()
        self.record_stage(stage, time.perf_counter() - start, note)
        return out

    def record_stage(self, stage: str, wall_s: float, note: str = "") -> None:
        """Keep a stage's wall time in ``OUTPUT/stages.json`` (the report's time table), with when it
        started after the beginning of this benchmark invocation (stages overlap with ``concurrent_runs``)."""
        path = os.path.join(self.spec.output_dir, STAGES_FILE)
        stages = self.stages()
        begin = max(0.0, time.time() - wall_s - getattr(self, "_t0", time.time() - wall_s))
        stages = [s for s in stages if s["stage"] != stage] + [{"stage": stage, "wall_s": wall_s, "note": note,
                                                                "start_s": begin}]
        os.makedirs(self.spec.output_dir, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(stages, f, indent=1)
        os.replace(tmp, path)

    def stages(self) -> list[dict]:
        path = os.path.join(self.spec.output_dir, STAGES_FILE)
        if not os.path.isfile(path):
            return []
        try:
            with open(path, encoding="utf-8") as f:
                return list(json.load(f))
        except (OSError, ValueError):
            logger.warning("%s is unreadable; the stage times start again", path)
            return []

    # pre-training ---------------------------------------------------------------------------------
    def _product_keys(self, init: Initialization) -> dict[str, str]:
        from .product_cache import product_key

        dirs = {s.name: self.spec.pretrain_dir(init.name, s.name) for s in init.pretrain}
        keys: dict[str, str] = {}
        for step in init.pretrain:
            keys[step.name] = product_key(step.config, self._step_overrides(init, step), dirs, keys)
        return keys

    def _fetch_cached_products(self, init: Initialization) -> None:
        """Fill missing step products from the content cache (``reuse_pretraining``)."""
        if not self.spec.reuse_pretraining or not init.pretrain:
            return
        from .product_cache import fetch_product

        try:
            keys = self._product_keys(init)
        except Exception as e:  # the cache only saves time: a step it cannot key simply runs
            logger.warning("Pre-training cache of %s unavailable (%s: %s); its steps run",
                           init.name, type(e).__name__, e)
            return
        for step in init.pretrain:
            out = self.spec.pretrain_dir(init.name, step.name)
            if (not os.path.isfile(os.path.join(out, step.product))
                    and not os.path.isfile(os.path.join(out, "last_checkpoint"))):
                fetch_product(keys[step.name], out, step.product)

    def _pretrain(self, init: Initialization, step: PretrainStep) -> None:
        from ..pretrain.engine import pretrain_main
        from .product_cache import publish_product

        out = self.spec.pretrain_dir(init.name, step.name)
        self._fetch_cached_products(init)
        stage = f"pre-train {init.name}/{step.name}"
        if self._reused(init, step):
            return
        start = time.perf_counter()
        pretrain_main(_args(step.config, self._step_overrides(init, step)),
                      product="tokenizer" if step.tool == "tokenizer" else "backbone",
                      extra_hooks=_ProgressBar(stage, self.progress))
        wall = time.perf_counter() - start
        self.record_stage(stage, wall)
        if self.spec.reuse_pretraining:
            publish_product(self._product_keys(init)[step.name], out, step.product, wall)

    # probes -----------------------------------------------------------------------------------------
    def probe(self, init: Initialization):
        """Probe ``init``'s encoder (cached in ``OUTPUT/probe/<init>.json``); ``(result, notes)``."""
        from .probe import run_probe

        cfg = LazyConfig.apply_overrides(LazyConfig.load(init.config), self._base_overrides(init))
        ckpt = self.checkpoint_for(init)
        if ckpt and not os.path.isfile(ckpt):
            return None, f"no checkpoint {ckpt}"
        return run_probe(cfg, ckpt, self.spec.probe, os.path.join(self.spec.output_dir, "probe", f"{init.name}.json"),
                         device=self._cost_device())

    # search and fine-tuning -----------------------------------------------------------------------
    def _search_and_finetune(self, init: Initialization, first: bool = False) -> None:
        """The search's rounds (each point an ordinary run, reused when finished), then the final
        fine-tuning of every seed with the chosen values, then its cost."""
        if self.spec.search.mode != "none":
            start, ran, attempted = time.perf_counter(), 0, set()
            while True:
                plan = self.search_state(init)
                if plan.chosen is not None:
                    break
                for point in plan.pending:
                    if point.name in attempted:  # trained, yet its run is not complete: say why, move on
                        problems = collect_run(point.name, self.point_dir(init, point)).problems
                        self._mark_failed(init, point, "its run ended incomplete: " + "; ".join(problems))
                        continue
                    attempted.add(point.name)
                    try:
                        self._train_detector(init, self.point_overrides(init, point), self.point_dir(init, point),
                                             f"search {init.name} {point.name}")
                        ran += 1
                    except Exception as e:  # a diverged or broken point: reported, the others decide
                        self._mark_failed(init, point,
                                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            if ran:
                self.record_stage(f"search {init.name}", time.perf_counter() - start,
                                  f"{len(plan.points)} points, chose lr {plan.chosen['lr']:.3g}, wd "
                                  f"{plan.chosen['weight_decay']:.3g}, dp {plan.chosen['drop_path']:g}")
        for seed in range(self.spec.seeds):
            run_dir = self.spec.run_dir(init.name, seed)
            if collect_run(init.name, run_dir).status != "complete":
                label = f"fine-tune {init.name}" + (f" seed {seed}" if seed else "")
                start = time.perf_counter()
                self._train_detector(init, self.detection_overrides(init, seed), run_dir, label, seed)
                self.record_stage(label, time.perf_counter() - start)
        if self.spec.cost:
            self._measure_cost(init, first)

    def _measure_cost(self, init: Initialization, first: bool) -> None:
        """Parameters, FLOPs and inference time of ``init``'s run (and, for the first, the training profile)."""
        run_dir = self.spec.run_dir(init.name, 0)
        if os.path.isfile(os.path.join(run_dir, "cost.json")):
            return
        from .cost import measure_cost

        # The training-step profile once per benchmark: every init shares the architecture.
        self._timed(f"cost {init.name}", lambda: measure_cost(
            run_dir, device=self._cost_device(), profile_steps=self.spec.profile_steps if first else 0))

    def _cost_device(self) -> str:
        return resolve_benchmark_device(self.spec.device)

    def _train_detector(self, init: Initialization, overrides: list[str], run_dir: str, label: str,
                        seed: int = 0) -> None:
        from ..engine.defaults import main

        ckpt = self.checkpoint_for(init)
        if ckpt and not os.path.isfile(ckpt):
            raise FileNotFoundError(f"initialization {init.name}: checkpoint {ckpt} does not exist")
        seen: dict = {}
        bar = _ProgressBar(label, self.progress)

        def hooks(model, trainer) -> list:
            # The training set's size (for epochs) from the loader the run built, not a re-read.
            seen["train_images"] = len(getattr(trainer.data_loader, "dataset", []) or []) or None
            return bar(model, trainer)

        info_path = os.path.join(run_dir, "run_info.json")
        # A finished run only re-evaluated (its final row was lost) keeps its own training time.
        keep_info = os.path.isfile(os.path.join(run_dir, "model_final.pth")) and os.path.isfile(info_path)
        start = time.perf_counter()
        main(_args(init.config, overrides), extra_hooks=hooks)
        if keep_info:
            return
        info = {"config_file": init.config, "source": init.source, "init_checkpoint": ckpt, "seed_index": seed,
                "device_info": device_description(self._cost_device()),
                "train_time_s": time.perf_counter() - start, "train_images": seen.get("train_images")}
        with open(info_path, "w") as f:
            json.dump(info, f, indent=1)

    # --- what is collected ------------------------------------------------------------------
    def collect(self, only: list[str] | None = None) -> list[RunResult]:
        """One :class:`RunResult` per (initialization, seed), in the benchmark's order (only the
        initializations ``only`` names, when given); a failure of :meth:`run` is one of its problems."""
        results = []
        for init in self._selected(only):
            pretrain = self.pretrain_info(init)
            for seed in range(self.spec.seeds):
                name = self._run_name(init, seed)
                r = collect_run(name, self.spec.run_dir(init.name, seed))
                r.init, r.seed = init.name, seed
                r.config_file = r.config_file or init.config
                r.pretrain = pretrain
                if name in self.failures:
                    r.problems.append(self.failures[name])
                    r.status = "partial" if r.status == "complete" else r.status
                results.append(r)
        return results

    def collect_extras(self, only: list[str] | None = None) -> dict:
        """What the report shows besides the runs: probes, searches, pre-training steps, stage times."""
        from .report_sections import pretrain_info_from_dir

        inits = self._selected(only)
        probes = {}
        if self.spec.probe:
            for init in inits:
                try:
                    probes[init.name] = self.probe(init)
                except Exception as e:  # the report stands without one probe
                    logger.warning("Probe of %s failed: %s: %s", init.name, type(e).__name__, e)
                    probes[init.name] = (None, f"probe failed: {type(e).__name__}: {e}")
        steps = []
        for init in inits:
            for step in init.pretrain:
                directory = self.spec.pretrain_dir(init.name, step.name)
                info = {"name": f"{init.name}/{step.name}", "dir": directory, **pretrain_info_from_dir(directory)}
                product = os.path.join(directory, step.product)
                meta = read_export_meta(product) if step.tool != "tokenizer" and os.path.isfile(product) else {}
                iterations = meta.get("iterations") or info.get("iterations")
                batch = meta.get("batch_size") or info.get("batch_size")
                images = (iterations or 0) * (batch or 0) or None
                info.update(method=meta.get("method") or step.tool, iterations=iterations, batch_size=batch,
                            images_seen=images, epochs=meta.get("epochs"),
                            data_images=(meta.get("data") or {}).get("num_images"))
                steps.append(info)
        return {"probes": probes, "searches": {i.name: self.search_summary(i) for i in inits},
                "pretrain_steps": steps, "stages": self.stages()}

    def pretrain_info(self, init: Initialization) -> dict:
        """What the backbone saw before detection, from its export's metadata: method, iterations,
        images seen, epochs over its data; ``{}`` for random init or a file without our metadata."""
        path = self.checkpoint_for(init)
        if not path or not os.path.isfile(path):
            return {}
        meta = read_export_meta(path)
        if not meta:
            return {}
        images = meta.get("iterations", 0) * meta.get("batch_size", 0) or None
        data = meta.get("data") or {}
        info = {"method": meta.get("method"), "iterations": meta.get("iterations"),
                "batch_size": meta.get("batch_size"), "images_seen": images, "epochs": meta.get("epochs"),
                "data_images": data.get("num_images")}
        if init.pretrain and len(init.pretrain) > 1:
            info["chain"] = [s.name for s in init.pretrain]
        return info
