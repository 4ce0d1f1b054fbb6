"""Run a training tool as a cluster job with submitit (the MAE / ViTDet convention).

One job is one run of ``tools/lazyconfig_train_net.py``, ``tools/pretrain_net.py`` or
``tools/train_tokenizer.py`` on ``nodes x gpus_per_node`` processes. Slurm starts one task per
GPU; each task exports the torch.distributed environment (submitit's
``TorchDistributedEnvironment``: ``MASTER_ADDR`` / ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``) and calls the tool's entry point with the tool's own arguments, whose launcher
then initialises from ``env://`` exactly as under ``torchrun``.

A job that needs another job's product runs after it: ``--dependency=afterok:ID`` on Slurm, with
``--kill-on-invalid-dep=yes`` so that it is cancelled (not left pending) when that job fails.
submitit's local executor (``--launcher local``: background processes on this machine, the same
path without a cluster) has no dependencies, so there the job waits for the result file of the job
it needs and fails, naming it and its log, when that job failed. A preempted or timed-out Slurm
job is requeued by submitit and resumes from its last checkpoint (``--resume``).

Every submission is recorded in a ``jobs.json`` (name, job id, log files, command, dependencies);
:func:`job_status` reads a record back: completed / failed (with the error's last line) /
running / pending (with Slurm's reason) / unknown.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

__all__ = [
    "ENTRY_POINTS",
    "JobRecord",
    "JobSpec",
    "JobStatus",
    "SubmitError",
    "SubmitOptions",
    "ToolJob",
    "add_launcher_arguments",
    "job_status",
    "launcher_requested",
    "parse_time_limit",
    "read_jobs",
    "strip_launcher_arguments",
    "submit_jobs",
    "submit_tool",
    "write_jobs",
]

logger = logging.getLogger(__name__)

# tool -> (module, function, script): what a job calls, and the command line it stands for.
ENTRY_POINTS = {
    "train": ("vitdet_bench.engine.defaults", "run", "tools/lazyconfig_train_net.py"),
    "pretrain": ("vitdet_bench.pretrain.engine", "run_pretrain", "tools/pretrain_net.py"),
    "tokenizer": ("vitdet_bench.pretrain.engine", "run_train_tokenizer", "tools/train_tokenizer.py"),
    # The benchmark's own steps (a tuning search's selection: it reads a round and submits the next).
    "benchmark": ("vitdet_bench.benchmark.cli", "main", "tools/benchmark.py"),
}
LAUNCHERS = ("none", "slurm", "local")
# Flags added by add_launcher_arguments -> whether they take a value (for strip_launcher_arguments).
_LAUNCHER_FLAGS = {"--launcher": True, "--partition": True, "--nodes": True, "--gpus-per-node": True, "--time": True,
                   "--account": True, "--constraint": True, "--qos": True, "--mem-gb": True, "--cpus-per-task": True,
                   "--job-dir": True}


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """The cluster-submission flags (any tool's parser can take them). Added to the parser itself,
    not to an argument group, so a parser subclass that tracks its options sees them."""
    parser.add_argument("--launcher", choices=LAUNCHERS, default="none",
                        help="slurm: submit as Slurm job(s) and return; local: submitit's local executor (background "
                        "processes here, the cluster path without a cluster); none: run here (default)")
    parser.add_argument("--partition", default=None, help="Slurm partition")
    parser.add_argument("--nodes", type=int, default=None, help="machines per job (default: --num-machines, 1)")
    parser.add_argument("--gpus-per-node", type=int, default=None,
                        help="GPUs, hence processes, per machine (default: --num-gpus)")
    parser.add_argument("--time", default="4320", metavar="LIMIT",
                        help="time limit per job: minutes or Slurm's [D-]HH:MM[:SS] (default 4320 = 3 days; a job "
                        "stopped at the limit is requeued and resumes)")
    parser.add_argument("--account", default=None, help="Slurm account to charge")
    parser.add_argument("--constraint", default=None, help="Slurm node constraint (e.g. a GPU type)")
    parser.add_argument("--qos", default=None, help="Slurm quality of service")
    parser.add_argument("--mem-gb", type=int, default=None, help="memory per machine in GB (default: the cluster's)")
    parser.add_argument("--cpus-per-task", type=int, default=8, help="CPU cores per process (data loading; default 8)")
    parser.add_argument("--job-dir", default=None,
                        help="where submitit keeps job files and logs (default: OUTPUT_DIR/submitit, a folder per "
                        "Slurm job id)")


def launcher_requested(args: argparse.Namespace) -> bool:
    """Whether parsed arguments ask for a submission rather than a run here."""
    return getattr(args, "launcher", "none") not in (None, "none")


def strip_launcher_arguments(argv: Sequence[str]) -> list[str]:
    """``argv`` without the flags of :func:`add_launcher_arguments` (``--flag V`` and ``--flag=V``):
    what the submitted job runs."""
    out: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        name = word.split("=", 1)[0]
        if name in _LAUNCHER_FLAGS:
            skip = "=" not in word and _LAUNCHER_FLAGS[name]
            continue
        out.append(word)
    return out


def parse_time_limit(value: str | int) -> int:
    """Minutes from ``"90"``, ``"MM:SS"``, ``"HH:MM:SS"``, ``"D-HH"``, ``"D-HH:MM"`` or
    ``"D-HH:MM:SS"`` (Slurm's ``--time`` formats), rounded up to whole minutes."""
    text = str(value).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise ValueError(f"--time {value!r}: expected minutes or [D-]HH:MM[:SS]")
    days, a, b, c = match.groups()
    parts = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-HH[:MM[:SS]]
        h, m, s = (parts + [0, 0])[:3]
        seconds = ((int(days) * 24 + h) * 60 + m) * 60 + s
    elif len(parts) == 1:
        seconds = parts[0] * 60
    elif len(parts) == 2:  # MM:SS
        seconds = parts[0] * 60 + parts[1]
    else:
        seconds = (parts[0] * 60 + parts[1]) * 60 + parts[2]
    if seconds <= 0:
        raise ValueError(f"--time {value!r}: the limit must be positive")
    return -(-seconds // 60)


@dataclass
class SubmitOptions:
    """Where and how jobs run (from :func:`add_launcher_arguments`' flags)."""

    launcher: str = "slurm"
    nodes: int = 1
    gpus_per_node: int = 1
    timeout_min: int = 4320
    partition: str | None = None
    account: str | None = None
    constraint: str | None = None
    qos: str | None = None
    mem_gb: int | None = None
    cpus_per_task: int | None = 8
    job_dir: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, default_gpus: int = 1, default_nodes: int = 1) -> "SubmitOptions":
        options = cls(
            launcher=args.launcher,
            nodes=args.nodes if args.nodes is not None else default_nodes,
            gpus_per_node=args.gpus_per_node if args.gpus_per_node is not None else default_gpus,
            timeout_min=parse_time_limit(args.time),
            partition=args.partition, account=args.account, constraint=args.constraint, qos=args.qos,
            mem_gb=args.mem_gb, cpus_per_task=args.cpus_per_task, job_dir=args.job_dir,
        )
        options.check()
        return options

    def check(self) -> None:
        if self.launcher not in LAUNCHERS[1:]:
            raise ValueError(f"--launcher must be one of {LAUNCHERS[1:]} to submit, got {self.launcher!r}")
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise ValueError(f"--nodes and --gpus-per-node must be >= 1, got {self.nodes} and {self.gpus_per_node}")
        if self.launcher == "local" and self.nodes != 1:
            raise ValueError(f"--launcher local runs on this machine only: --nodes must be 1, got {self.nodes}")

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node

    def launcher_argv(self) -> list[str]:
        """These options as the command-line flags that give them back (a job that submits more jobs)."""
        argv = ["--launcher", self.launcher, "--nodes", str(self.nodes), "--gpus-per-node", str(self.gpus_per_node),
                "--time", str(self.timeout_min)]
        for flag, value in (("--partition", self.partition), ("--account", self.account),
                            ("--constraint", self.constraint), ("--qos", self.qos), ("--mem-gb", self.mem_gb),
                            ("--cpus-per-task", self.cpus_per_task), ("--job-dir", self.job_dir)):
            if value is not None:
                argv += [flag, str(value)]
        return argv

    def tool_args(self) -> list[str]:
        """The process-count flags of the tool's own command line."""
        return ["--num-gpus", str(self.gpus_per_node)] + (["--num-machines", str(self.nodes)] if self.nodes > 1 else [])


@dataclass
class JobSpec:
    """One job: a tool and its arguments; ``after`` names the jobs whose products it needs."""

    name: str
    tool: str
    argv: list[str]
    output_dir: str
    after: list[str] = field(default_factory=list)
    done: bool = False  # its product already exists: nothing to submit
    after_any: bool = False  # run once the jobs it is after have ended, failed or not (Slurm's afterany)
    light: bool = False  # one CPU task, no GPU (a selection step that reads results and submits jobs)

    @property
    def command(self) -> str:
        """The shell command this job stands for."""
        script = ENTRY_POINTS[self.tool][2]
        return f"python {script} " + " ".join(shlex.quote(a) for a in self.argv)


@dataclass
class JobRecord:
    """A submitted job, as ``jobs.json`` keeps it."""

    name: str
    job_id: str
    launcher: str
    folder: str
    stdout: str
    stderr: str
    command: str
    output_dir: str
    tasks: int = 1
    after: list[str] = field(default_factory=list)  # job ids
    submitted: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class JobStatus:
    """What became of a :class:`JobRecord`: ``state`` is completed, failed, running, pending or
    unknown; ``detail`` the scheduler's state or reason, or the error's last line."""

    record: JobRecord
    state: str
    detail: str = ""

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "failed")


def _entry_point(tool: str):
    if tool not in ENTRY_POINTS:
        raise ValueError(f"unknown tool {tool!r}; one of {sorted(ENTRY_POINTS)}")
    module, function, _ = ENTRY_POINTS[tool]
    return getattr(importlib.import_module(module), function)


def _result(folder: str, job_id: str) -> tuple[str, Any] | None:
    """``("success", value)`` / ``("error", traceback)`` from submitit's result file of task 0."""
    from submitit.core.utils import JobPaths, pickle_load

    path = JobPaths(folder, job_id, 0).result_pickle
    if not path.exists():
        return None
    try:
        return pickle_load(path)
    except (EOFError, OSError):  # being written
        return None


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else "failed"


class SubmitError(RuntimeError):
    """Jobs cannot be submitted from here (no Slurm on this machine): a message for the user, no traceback."""


class DependencyFailedError(RuntimeError):
    """A job this job needs failed, so this one cannot run."""


class ToolJob:
    """The callable a submitted job runs in each of its tasks (picklable, no state beyond its args).

    Args:
        tool: a key of :data:`ENTRY_POINTS`.
        argv: the tool's command-line arguments.
        cwd: the directory the command was issued from (relative config paths resolve there).
        wait_for: jobs to wait for first (local executor only): dicts with ``name``, ``folder``,
            ``job_id`` (the local job's process id), ``stderr``.
        poll_s: how often to look at their result files.
    """

    def __init__(self, tool: str, argv: Sequence[str], cwd: str, wait_for: Sequence[dict] = (), poll_s: float = 2.0,
                 after_any: bool = False):
        self.tool = tool
        self.argv = list(argv)
        self.cwd = cwd
        self.wait_for = [dict(w) for w in wait_for]
        self.poll_s = poll_s
        self.after_any = after_any

    def _wait(self) -> None:
        pending = list(self.wait_for)
        while pending:
            for dep in list(pending):
                result = _result(dep["folder"], dep["job_id"])
                if result is None and not _pid_alive(int(dep["job_id"])):
                    result = _result(dep["folder"], dep["job_id"]) or ("error", "its process ended without a result")
                if result is None:
                    continue
                if result[0] != "success" and not self.after_any:
                    raise DependencyFailedError(
                        f"job {dep['name']} ({dep['job_id']}), whose product this job needs, failed: "
                        f"{_last_error_line(result[1])}; its log: {dep['stderr']}")
                pending.remove(dep)
            if pending:
                time.sleep(self.poll_s)

    def __call__(self) -> None:
        from submitit.helpers import TorchDistributedEnvironment

        os.chdir(self.cwd)
        self._wait()
        # RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT: the tool's launcher then
        # initialises torch.distributed from env://, as under torchrun. CUDA_VISIBLE_DEVICES stays:
        # the launcher picks the GPU by local rank.
        env = TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        logger.info("Job task: rank %d of %d, master %s:%d", env.rank, env.world_size, env.master_addr,
                    env.master_port)
        sys.argv = [ENTRY_POINTS[self.tool][2], *self.argv]
        status = _entry_point(self.tool)(list(self.argv))
        if isinstance(status, int) and status != 0:  # a tool whose main returns an exit status
            raise RuntimeError(f"{ENTRY_POINTS[self.tool][2]} exited with status {status}")

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's requeue hook (preemption, time limit): the same run with ``--resume``."""
        from submitit.helpers import DelayedSubmission

        argv = self.argv if "--resume" in self.argv or self.tool == "benchmark" else ["--resume", *self.argv]
        return DelayedSubmission(ToolJob(self.tool, argv, self.cwd, after_any=self.after_any))


def _package_root() -> str:
    import vitdet_bench

    return os.path.dirname(os.path.dirname(os.path.abspath(vitdet_bench.__file__)))


def _executor(options: SubmitOptions, folder: str):
    import submitit
    import torch

    # Jobs unpickle vitdet_bench classes: make the package importable there as it is here.
    setup = [f"export PYTHONPATH={shlex.quote(_package_root())}${{PYTHONPATH:+:$PYTHONPATH}}"]
    if options.launcher == "local":
        executor = submitit.LocalExecutor(folder)
        executor.update_parameters(timeout_min=options.timeout_min, tasks_per_node=options.gpus_per_node, nodes=1,
                                   gpus_per_node=options.gpus_per_node if torch.cuda.is_available() else 0,
                                   setup=setup)
        return executor
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if missing:
        raise SubmitError(f"--launcher slurm needs Slurm's {' and '.join(missing)} on PATH, which this machine lacks; "
                          "submit from a cluster login node, try the jobs here with --launcher local, or print them "
                          "with tools/benchmark.py --print-commands")
    executor = submitit.SlurmExecutor(folder)
    params: dict[str, Any] = dict(time=options.timeout_min, nodes=options.nodes,
                                  ntasks_per_node=options.gpus_per_node, gpus_per_node=options.gpus_per_node,
                                  cpus_per_task=options.cpus_per_task, signal_delay_s=120, setup=setup)
    for key in ("partition", "account", "constraint", "qos"):
        if getattr(options, key):
            params[key] = getattr(options, key)
    if options.mem_gb:
        params["mem"] = f"{options.mem_gb}G"
    executor.update_parameters(**params)
    return executor


def submit_jobs(jobs: Sequence[JobSpec], options: SubmitOptions, default_job_dir: str,
                known: dict[str, JobRecord] | None = None, cwd: str | None = None) -> list[JobRecord]:
    """Submit ``jobs`` (in order; a job's ``after`` names earlier jobs) and return their records.

    Args:
        jobs: what to run; ``done`` jobs are skipped and satisfy the jobs after them.
        options: where and how.
        default_job_dir: submitit's folder when ``options.job_dir`` is not set; Slurm jobs get a
            subfolder per job id (``%j``).
        known: records of earlier submissions by name: a job whose earlier submission is still
            pending or running is not submitted again (its record is returned and waited for).
        cwd: the directory relative paths resolve in (default: the current one).
    """
    folder = options.job_dir or default_job_dir
    # Slurm: one folder per job id. The local executor's controller would create a folder named
    # "%j" literally; its files carry the job id in their names anyway.
    if options.launcher == "slurm" and "%j" not in folder:
        folder = os.path.join(folder, "%j")
    executor = _executor(options, folder)
    cwd = os.path.abspath(cwd or os.getcwd())
    by_name: dict[str, JobRecord] = {}
    done = {j.name for j in jobs if j.done}
    fresh: set[str] = set()  # submitted by this call
    records: list[JobRecord] = []
    for job in jobs:
        if job.done:
            continue
        earlier = (known or {}).get(job.name)
        state = job_status(earlier).state if earlier is not None else None
        if state in ("pending", "running"):
            if not any(n in fresh for n in job.after):
                logger.info("%s: job %s is still %s; not submitted again", job.name, earlier.job_id, state)
                by_name[job.name] = earlier
                records.append(earlier)
                continue
            # It waits for a job that is submitted anew (the earlier one failed): it would never start.
            _cancel(earlier)
        missing = [n for n in job.after if n not in by_name and n not in done]
        if missing:
            raise ValueError(f"job {job.name} needs {missing}, which are neither done nor submitted before it")
        deps = [by_name[n] for n in job.after if n in by_name]
        records.append(_submit_one(executor, options, job, deps, cwd))
        by_name[job.name] = records[-1]
        fresh.add(job.name)
    return records


def _cancel(record: JobRecord) -> None:
    """Cancel an earlier submission that can no longer start (a local one fails by itself when
    the job it waits for failed)."""
    if record.launcher == "slurm":
        _run(["scancel", record.job_id])
    logger.warning("%s: cancelled earlier job %s, which waited for a job that failed", record.name, record.job_id)


def _resources(options: SubmitOptions, light: bool) -> dict:
    """The executor's size parameters for one job: the options', or one CPU task for a light step."""
    gpus = 0 if light else options.gpus_per_node
    tasks = 1 if light else options.gpus_per_node
    if options.launcher == "slurm":  # no GPU line at all for a light step (not every cluster takes 0)
        return dict(nodes=1 if light else options.nodes, ntasks_per_node=tasks, gpus_per_node=gpus or None,
                    cpus_per_task=1 if light else options.cpus_per_task)
    import torch

    return dict(tasks_per_node=tasks, gpus_per_node=gpus if torch.cuda.is_available() else 0)


def _submit_one(executor, options: SubmitOptions, job: JobSpec, deps: list[JobRecord], cwd: str) -> JobRecord:
    wait_for: list[dict] = []
    executor.update_parameters(**_resources(options, job.light))
    if options.launcher == "slurm":
        kind = "afterany" if job.after_any else "afterok"
        executor.update_parameters(
            job_name=job.name.replace("/", "_"),
            dependency=f"{kind}:" + ":".join(d.job_id for d in deps) if deps else None,
            additional_parameters={"kill-on-invalid-dep": "yes"} if deps and not job.after_any else {},
        )
    else:
        wait_for = [dict(name=d.name, folder=d.folder, job_id=d.job_id, stderr=d.stderr) for d in deps]
    submitted = executor.submit(ToolJob(job.tool, job.argv, cwd, wait_for, after_any=job.after_any))
    paths = submitted.paths
    record = JobRecord(name=job.name, job_id=str(submitted.job_id), launcher=options.launcher,
                       folder=str(paths.folder), stdout=str(paths.stdout), stderr=str(paths.stderr),
                       command=job.command, output_dir=job.output_dir, tasks=1 if job.light else options.world_size,
                       after=[d.job_id for d in deps],
                       submitted=datetime.datetime.now().isoformat(timespec="seconds"))
    logger.info("Submitted %s as %s job %s%s; log %s", job.name, options.launcher, record.job_id,
                f" (after {', '.join(record.after)})" if deps else "", record.stdout)
    return record


def write_jobs(path: str, records: Sequence[JobRecord], replace: bool = True) -> None:
    """Write ``records`` to ``path`` (JSON), keeping earlier records of other names (atomically)."""
    kept = [r for r in read_jobs(path) if r.name not in {x.name for x in records}] if replace else []
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"jobs": [r.to_dict() for r in kept + list(records)]}, f, indent=1)
    os.replace(tmp, path)


def read_jobs(path: str) -> list[JobRecord]:
    """The records of a ``jobs.json`` ([] when there is none)."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
    fields = {f.name for f in dataclasses.fields(JobRecord)}
    records = []
    for n, item in enumerate(data.get("jobs", [])):
        unknown = set(item) - fields
        if unknown:
            raise ValueError(f"{path}: job {n} has unknown keys {sorted(unknown)}")
        records.append(JobRecord(**item))
    return records


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return None


# Slurm job states -> ours.
_SLURM_STATES = {"PENDING": "pending", "CONFIGURING": "pending", "REQUEUED": "pending", "RESIZING": "pending",
                 "RUNNING": "running", "COMPLETING": "running", "SUSPENDED": "running", "STOPPED": "running",
                 "COMPLETED": "completed"}


def job_status(record: JobRecord) -> JobStatus:
    """The state of a submitted job: submitit's result file first; then, for a local job, whether
    its process lives; for a Slurm job, ``sacct`` (and ``squeue``'s reason when pending)."""
    result = _result(record.folder, record.job_id)
    if result is not None:
        if result[0] == "success":
            return JobStatus(record, "completed")
        return JobStatus(record, "failed", _last_error_line(result[1]))
    if record.launcher == "local":
        if _pid_alive(int(record.job_id)):
            return JobStatus(record, "running")
        return JobStatus(record, "failed", "the job's process ended without a result (killed?)")
    line = _run(["sacct", "-j", record.job_id, "-X", "-n", "-P", "-o", "State"])
    if not line:
        return JobStatus(record, "unknown", "sacct has no record of it (or is not available here)")
    slurm_state = line.splitlines()[0].split()[0]
    state = _SLURM_STATES.get(slurm_state, "failed")
    detail = slurm_state
    if state == "pending":
        reason = _run(["squeue", "-j", record.job_id, "-h", "-o", "%r"])
        if reason:
            detail = f"{slurm_state} ({reason})"
    if state == "completed":  # finished for Slurm, but submitit wrote no result: the task died
        state, detail = "failed", "COMPLETED without a result file (the job's Python process did not finish)"
    return JobStatus(record, state, detail)


def submit_tool(tool: str, argv: Sequence[str], args: argparse.Namespace) -> JobRecord:
    """What ``--launcher`` does in a training tool: submit this very command (without the launcher
    flags) as one job on ``--nodes x --gpus-per-node`` processes, and record it in
    ``OUTPUT_DIR/jobs.json``.

    Args:
        tool: "train", "pretrain" or "tokenizer".
        argv: the tool's full command line (``sys.argv[1:]``).
        args: the parsed arguments (launcher flags, ``config_file`` and ``opts`` for the output
            directory, ``--num-gpus`` / ``--num-machines`` as defaults for the process counts).
    """
    options = SubmitOptions.from_args(args, default_gpus=getattr(args, "num_gpus", 1),
                                      default_nodes=getattr(args, "num_machines", 1))
    from ..config import LazyConfig

    job_argv = strip_launcher_arguments(argv)
    output_dir = str(LazyConfig.apply_overrides(LazyConfig.load(args.config_file), list(args.opts)).train.output_dir)
    name = os.path.basename(os.path.normpath(output_dir)) or tool
    spec = JobSpec(name=name, tool=tool, argv=job_argv, output_dir=output_dir)
    jobs_path = os.path.join(output_dir, "jobs.json")
    known = {r.name: r for r in read_jobs(jobs_path)}
    (record,) = submit_jobs([spec], options, os.path.join(output_dir, "submitit"), known=known)
    write_jobs(jobs_path, [record])
    logger.info("Job %s (%s): %d process(es); logs %s and %s; recorded in %s", record.job_id, name, options.world_size,
                record.stdout, record.stderr, jobs_path)
    return record
