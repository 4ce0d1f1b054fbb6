"""The benchmark runner: pre-train what is missing, fine-tune one detector per initialization,
evaluate, and collect everything into one report (``tools/benchmark.py``).

A benchmark is a LazyConfig file with a ``benchmark`` dict (``configs/benchmark/*.py``)::

    benchmark = dict(
        output_dir="./output/benchmark/demo",
        detection_overrides=[...],            # applied to every detection run
        inits=dict(
            random=dict(config="configs/demo/bench/random.py"),
            mae=dict(config="configs/demo/bench/mae.py",
                     pretrain=[dict(name="mae", config="projects/MAE/configs/mae_vit_tiny_demo.py")]),
            beit=dict(config=..., pretrain=[dict(name="tokenizer", tool="tokenizer", config=...),
                                            dict(name="beit", config=..., overrides=["tokenizer.path={tokenizer}/tokenizer_final.pth"])]),
            mocov3=dict(config="configs/COCO/mask_rcnn_vit_b_mocov3_100ep.py", checkpoint="checkpoints/vit-b-300ep.pth.tar"),
        ),
    )

Each initialization is a detection recipe config (its own lr, drop path, block design) plus where
its backbone comes from: ``checkpoint`` (a file in any format the loader reads), ``pretrain`` (a
chain of pre-training configs run first; the last one's ``backbone_final.pth`` is used; ``{name}``
in overrides is an earlier step's output directory), or neither (random init).

Other keys: ``device`` ("cpu", "cuda" or "auto", passed to every run as ``train.device``),
``seeds`` (each fine-tuning runs with ``train.seed`` = 0 .. seeds-1; pre-training runs once),
``bootstrap`` (``resamples``, ``level``, ``seed`` of the confidence intervals over validation
images), ``profile`` (a name for the report, e.g. "CPU demo"), ``profile_steps`` (training steps
under the torch profiler for the report's cost section; 0: none).

Everything is idempotent: a finished pre-training or detection run is reused, an unfinished one
resumes from its last checkpoint. On a cluster, ``--launcher slurm`` submits each pre-training step
and each fine-tuning as its own job, chained by dependencies (:meth:`Runner.submit`, recorded in
``jobs.json``), ``--print-commands`` prints the same jobs as shell commands, and ``--collect-only``
later reports the jobs and gathers the finished runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf

from ..engine.submit import JobRecord, JobSpec, JobStatus, SubmitOptions, job_status, read_jobs, submit_jobs, write_jobs
from .collect import RunResult, collect_run

__all__ = ["BENCHMARK_LOCK", "BenchmarkSpec", "Initialization", "PretrainStep", "Runner", "default_benchmark_file",
           "default_num_gpus", "device_description", "load_benchmark", "read_export_meta", "resolve_benchmark_device"]

logger = logging.getLogger("vitdet_bench.benchmark")

DEFAULT_INITS = ("random", "supervised", "mocov3", "beit", "mae")
BENCHMARK_LOCK = "benchmark.lock"  # held in output_dir while a benchmark runs, collects or submits there


@dataclass
class PretrainStep:
    name: str
    config: str
    tool: str = "pretrain"  # "pretrain" (backbone_final.pth) or "tokenizer" (tokenizer_final.pth)
    overrides: list[str] = field(default_factory=list)

    @property
    def product(self) -> str:
        return "tokenizer_final.pth" if self.tool == "tokenizer" else "backbone_final.pth"


@dataclass
class Initialization:
    name: str
    config: str
    checkpoint: str | None = None
    pretrain: list[PretrainStep] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        if self.checkpoint:
            return f"checkpoint {self.checkpoint}"
        if self.pretrain:
            return "pre-trained here: " + " -> ".join(os.path.relpath(s.config) for s in self.pretrain)
        return "random"


DEVICES = ("auto", "cpu", "cuda")
BOOTSTRAP_DEFAULTS = {"resamples": 500, "level": 0.95, "seed": 0}


@dataclass
class BenchmarkSpec:
    name: str
    output_dir: str
    inits: list[Initialization]
    detection_overrides: list[str] = field(default_factory=list)
    pretrain_overrides: list[str] = field(default_factory=list)
    tide: bool = True
    cost: bool = True
    source_file: str = ""
    device: str = "auto"
    seeds: int = 1
    profile: str = ""
    profile_steps: int = 0
    bootstrap: dict = field(default_factory=lambda: dict(BOOTSTRAP_DEFAULTS))

    def run_dir(self, init: str, seed: int = 0) -> str:
        """``runs/<init>`` for seed 0 (the run every benchmark has), ``runs/<init>_seed<k>`` for more."""
        return os.path.join(self.output_dir, "runs", init if seed == 0 else f"{init}_seed{seed}")

    def pretrain_dir(self, init: str, step: str) -> str:
        return os.path.join(self.output_dir, "pretrain", f"{init}_{step}")


def _plain(x):
    return OmegaConf.to_container(x, resolve=True) if isinstance(x, DictConfig) or OmegaConf.is_list(x) else x


def load_benchmark(path: str, overrides: list[str] | None = None) -> BenchmarkSpec:
    """Read a benchmark file (its ``benchmark`` dict); ``overrides`` are ``benchmark.*`` key=value."""
    from ..config import LazyConfig

    cfg = LazyConfig.load(path)
    if "benchmark" not in cfg:
        raise ValueError(f"{path} has no `benchmark` dict (see configs/benchmark/demo.py)")
    if overrides:
        def scoped(o: str) -> str:
            plus, key = ("+", o[1:]) if o.startswith("+") else ("", o)
            return o if key.startswith("benchmark.") else f"{plus}benchmark.{key}"

        cfg = LazyConfig.apply_overrides(cfg, [scoped(o) for o in overrides])
    b = _plain(cfg.benchmark)
    inits = []
    for name, d in (b.get("inits") or {}).items():
        unknown = set(d) - {"config", "checkpoint", "pretrain", "overrides"}
        if unknown:
            raise ValueError(f"benchmark.inits.{name}: unknown keys {sorted(unknown)}")
        if "config" not in d:
            raise ValueError(f"benchmark.inits.{name}: needs a detection `config`")
        if d.get("checkpoint") and d.get("pretrain"):
            raise ValueError(f"benchmark.inits.{name}: give `checkpoint` or `pretrain`, not both")
        steps = [PretrainStep(**s) for s in d.get("pretrain") or []]
        for s in steps:
            if s.tool not in ("pretrain", "tokenizer"):
                raise ValueError(f"benchmark.inits.{name}.pretrain.{s.name}: tool must be 'pretrain' or 'tokenizer'")
        if steps and steps[-1].tool != "pretrain":
            raise ValueError(f"benchmark.inits.{name}: the last pre-training step must export a backbone")
        inits.append(Initialization(name, d["config"], d.get("checkpoint"), steps, list(d.get("overrides") or [])))
    if not inits:
        raise ValueError(f"{path}: benchmark.inits is empty")
    known = {"name", "output_dir", "inits", "detection_overrides", "pretrain_overrides", "tide", "cost", "device",
             "seeds", "profile", "profile_steps", "bootstrap"}
    unknown = set(b) - known
    if unknown:
        raise ValueError(f"{path}: unknown benchmark keys {sorted(unknown)} (known: {sorted(known)})")
    device = str(b.get("device", "auto"))
    if device not in DEVICES:
        raise ValueError(f"{path}: benchmark.device must be one of {DEVICES}, got {device!r}")
    seeds = int(b.get("seeds", 1))
    if seeds < 1:
        raise ValueError(f"{path}: benchmark.seeds must be >= 1, got {seeds}")
    bootstrap = dict(BOOTSTRAP_DEFAULTS)
    bootstrap.update(b.get("bootstrap") or {})
    if set(bootstrap) != set(BOOTSTRAP_DEFAULTS) or int(bootstrap["resamples"]) < 1 or not 0 < float(bootstrap["level"]) < 1:
        raise ValueError(f"{path}: benchmark.bootstrap needs resamples >= 1, 0 < level < 1 and seed; got {bootstrap}")
    return BenchmarkSpec(
        name=b.get("name", os.path.splitext(os.path.basename(path))[0]),
        output_dir=b["output_dir"],
        inits=inits,
        detection_overrides=list(b.get("detection_overrides") or []),
        pretrain_overrides=list(b.get("pretrain_overrides") or []),
        tide=bool(b.get("tide", True)),
        cost=bool(b.get("cost", True)),
        source_file=path,
        device=device,
        seeds=seeds,
        profile=str(b.get("profile", "")),
        profile_steps=int(b.get("profile_steps", 0)),
        bootstrap=bootstrap,
    )


def resolve_benchmark_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when CUDA is available, else ``"cpu"``; others pass through."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def default_benchmark_file(repo: str, device: str, quick: bool = False) -> str:
    """The demo profile for a device: ``configs/benchmark/demo_gpu.py`` on CUDA, ``demo.py`` on the
    CPU, ``demo_quick.py`` for the smoke run."""
    name = "demo_quick.py" if quick else ("demo_gpu.py" if device == "cuda" else "demo.py")
    return os.path.join(repo, "configs", "benchmark", name)


def default_num_gpus(launcher: str, device: str) -> int:
    """Processes per job when ``--num-gpus`` / ``--gpus-per-node`` is not given: 8 GPUs per job for
    a cluster (``--launcher slurm``, ``--print-commands``: the paper's machines); on this machine
    (``--launcher local``) the visible GPU count for a CUDA benchmark and 1 for a CPU one."""
    if launcher != "local":
        return 8
    import torch

    if resolve_benchmark_device(device) == "cuda" and torch.cuda.is_available():
        return max(1, torch.cuda.device_count())
    return 1


def device_description(device: str) -> str:
    """``"NVIDIA H100 80GB HBM3 (CUDA 13.0), torch 2.14.1"`` or ``"<CPU model>, 2 threads, torch ..."``."""
    import platform

    import torch

    if device == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def read_export_meta(path: str) -> dict:
    """The ``meta`` block of a backbone export (``backbone_final.pth``), or ``{}`` for any other
    file. Memory-mapped: the weights are not read."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a torch zip file (a .pkl, a legacy file): no metadata to show
        return {}
    meta = data.get("meta") if isinstance(data, dict) else None
    return dict(meta) if isinstance(meta, dict) else {}


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

    def detection_overrides(self, init: Initialization, seed: int = 0) -> list[str]:
        ckpt = self.checkpoint_for(init)
        # Seed 0 keeps the recipe's own train.seed; the extra runs of --seeds get 1, 2, ...
        seed_opts = [f"train.seed={seed}"] if seed else []
        return (list(self.spec.detection_overrides) + list(init.overrides) + self._device_overrides() + seed_opts
                + [f"train.output_dir={self.spec.run_dir(init.name, seed)}", f"train.init_checkpoint={ckpt}"])

    def jobs(self, num_gpus: int = 8, num_machines: int = 1, only: list[str] | None = None) -> list[JobSpec]:
        """One job per pre-training step and per (initialization, seed) fine-tuning, in an order
        where every job comes after the jobs it needs (``after``); ``done`` marks a pre-training
        whose product exists or a fine-tuning whose run is complete. What :meth:`commands` prints
        and ``tools/benchmark.py --launcher slurm`` submits."""
        procs = ["--num-gpus", str(num_gpus)] + (["--num-machines", str(num_machines)] if num_machines > 1 else [])
        jobs = []
        for init in self._selected(only):
            # A step is done when its product exists or a later step's does (nothing needs it then).
            done, later = [], False
            for step in reversed(init.pretrain):
                product = os.path.join(self.spec.pretrain_dir(init.name, step.name), step.product)
                later = later or os.path.isfile(product)
                done.insert(0, later)
            previous: list[str] = []
            for step, step_done in zip(init.pretrain, done):
                name = f"{init.name}/pretrain-{step.name}"
                jobs.append(JobSpec(name, step.tool, ["--config-file", step.config, *procs, "--resume",
                                                      *self._step_overrides(init, step)],
                                    self.spec.pretrain_dir(init.name, step.name), list(previous), done=step_done))
                previous = [name]
            for seed in range(self.spec.seeds):
                run_dir = self.spec.run_dir(init.name, seed)
                jobs.append(JobSpec(f"{init.name}/finetune" + (f"-seed{seed}" if seed else ""), "train",
                                    ["--config-file", init.config, *procs, "--resume",
                                     *self.detection_overrides(init, seed)], run_dir, list(previous),
                                    done=collect_run(init.name, run_dir).status == "complete"))
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

    def submit(self, options: SubmitOptions, only: list[str] | None = None) -> list[JobRecord]:
        """Submit every missing job (:meth:`jobs`) with submitit, each fine-tuning after the
        pre-training it needs, and record them in ``OUTPUT_DIR/jobs.json`` (jobs of an earlier
        submission that are still pending or running are kept, not submitted again)."""
        path = self.jobs_file
        known = {r.name: r for r in read_jobs(path)}
        jobs = self.jobs(options.gpus_per_node, options.nodes, only)
        for job in jobs:
            if job.done:
                logger.info("%s: done (%s); not submitted", job.name, job.output_dir)
        records = submit_jobs(jobs, options, os.path.join(self.spec.output_dir, "submitit"), known=known)
        write_jobs(path, records)
        return records

    @property
    def jobs_file(self) -> str:
        """``OUTPUT_DIR/jobs.json``: the submitted jobs (see :mod:`vitdet_bench.engine.submit`)."""
        return os.path.join(self.spec.output_dir, "jobs.json")

    def job_statuses(self) -> list[JobStatus]:
        """The state of every job in ``jobs.json`` ([] when nothing was submitted)."""
        return [job_status(r) for r in read_jobs(self.jobs_file)]

    def run(self, only: list[str] | None = None) -> None:
        """Run every missing piece, sequentially. A step that fails is logged and recorded in
        :attr:`failures` (so :meth:`collect` reports it), the initialization's later steps are
        skipped, and the other initializations go on; Ctrl-C and SIGTERM stop everything."""
        from tqdm import tqdm

        inits = self._selected(only)
        if self.progress:
            os.environ["VITDET_BENCH_CONSOLE_LEVEL"] = "WARNING"
        stages = [(i, s, 0) for i in inits for s in i.pretrain]
        stages += [(i, None, seed) for i in inits for seed in range(self.spec.seeds)]
        overall = tqdm(total=len(stages), desc=f"benchmark {self.spec.name}", disable=not self.progress,
                       dynamic_ncols=True, file=sys.stderr)
        blocked: dict[str, str] = {}  # init -> why its fine-tuning cannot run (a failed pre-training)
        try:
            for init, step, seed in stages:
                label = f"{init.name} pre-training {step.name}" if step is not None else \
                    (f"{init.name} fine-tuning" + (f" seed {seed}" if seed else ""))
                if init.name in blocked:
                    if step is None:
                        self.failures[self._run_name(init, seed)] = blocked[init.name]
                    overall.update(1)
                    continue
                overall.set_postfix_str(label)
                try:
                    self._run_stage(init, step, seed, first=init is inits[0])
                except Exception as e:  # one initialization's failure must not cost the others
                    why = f"{label} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    logger.error("%s; the benchmark goes on with the other initializations", why)
                    if step is not None:
                        where = os.path.join(self.spec.pretrain_dir(init.name, step.name), "log.txt")
                        blocked[init.name] = f"not fine-tuned: {why} (see {where})"
                    else:
                        where = os.path.join(self.spec.run_dir(init.name, seed), "log.txt")
                        self.failures[self._run_name(init, seed)] = f"{why} (see {where})"
                overall.update(1)
        finally:
            overall.close()
            os.environ.pop("VITDET_BENCH_CONSOLE_LEVEL", None)

    @staticmethod
    def _run_name(init: Initialization, seed: int) -> str:
        return init.name if seed == 0 else f"{init.name}_seed{seed}"

    def _run_stage(self, init: Initialization, step: PretrainStep | None, seed: int, first: bool) -> None:
        """One pre-training step (``step``) or one fine-tuning (``step=None``), when not done yet."""
        from ..pretrain.engine import pretrain_main

        if step is not None:
            out = self.spec.pretrain_dir(init.name, step.name)
            if not os.path.isfile(os.path.join(out, step.product)):
                pretrain_main(_args(step.config, self._step_overrides(init, step)),
                              product="tokenizer" if step.tool == "tokenizer" else "backbone",
                              extra_hooks=_ProgressBar(f"pre-train {init.name}/{step.name}", self.progress))
            return
        run_dir = self.spec.run_dir(init.name, seed)
        if collect_run(init.name, run_dir).status != "complete":
            self._train_detector(init, seed)
        if self.spec.cost and seed == 0 and not os.path.isfile(os.path.join(run_dir, "cost.json")):
            from .cost import measure_cost

            # The training-step profile once per benchmark: every init shares the architecture.
            measure_cost(run_dir, device=self._cost_device(), profile_steps=self.spec.profile_steps if first else 0)

    def _cost_device(self) -> str:
        return resolve_benchmark_device(self.spec.device)

    def _train_detector(self, init: Initialization, seed: int = 0) -> None:
        from ..engine.defaults import main

        ckpt = self.checkpoint_for(init)
        if ckpt and not os.path.isfile(ckpt):
            raise FileNotFoundError(f"initialization {init.name}: checkpoint {ckpt} does not exist")
        seen: dict = {}
        bar = _ProgressBar(f"detector {init.name}" + (f" seed {seed}" if seed else ""), self.progress)

        def hooks(model, trainer) -> list:
            # The training set's size (for epochs) from the loader the run built, not a re-read.
            seen["train_images"] = len(getattr(trainer.data_loader, "dataset", []) or []) or None
            return bar(model, trainer)

        run_dir = self.spec.run_dir(init.name, seed)
        info_path = os.path.join(run_dir, "run_info.json")
        # A finished run only re-evaluated (its final row was lost) keeps its own training time.
        keep_info = os.path.isfile(os.path.join(run_dir, "model_final.pth")) and os.path.isfile(info_path)
        start = time.perf_counter()
        main(_args(init.config, self.detection_overrides(init, seed)), extra_hooks=hooks)
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
        info = {"method": meta.get("method"), "iterations": meta.get("iterations"), "batch_size": meta.get("batch_size"),
                "images_seen": images, "epochs": meta.get("epochs"), "data_images": data.get("num_images")}
        if init.pretrain and len(init.pretrain) > 1:
            info["chain"] = [s.name for s in init.pretrain]
        return info
