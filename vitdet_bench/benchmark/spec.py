"""A benchmark file (``configs/benchmark/*.py``): its ``benchmark`` dict read into a
:class:`BenchmarkSpec`, with every key checked, and the device / profile defaults of the command.

A benchmark file is one ``benchmark`` dict::

    benchmark = dict(
        output_dir="./output/benchmark/demo",
        detection_overrides=[...],            # applied to every detection run
        inits=dict(
            random=dict(config="configs/demo/bench/random.py"),
            mae=dict(config="configs/demo/bench/mae.py",
                     pretrain=[dict(name="mae", config="projects/MAE/configs/mae_vit_tiny_demo.py")]),
            mocov3=dict(config="configs/COCO/mask_rcnn_vit_b_mocov3_100ep.py",
                        checkpoint="checkpoints/vit-b-300ep.pth.tar"),
        ),
        search=dict(mode="grid", ...),        # the tuning protocol (benchmark/search.py); "none": the recipes' values
        probe=dict(dataset="demo", ...),      # the representation probe (benchmark/probe.py); None: off
    )

Each initialization is a detection recipe config plus where its backbone comes from: ``checkpoint``
(a file in any format the loader reads), ``pretrain`` (a chain of pre-training configs run first;
the last one's ``backbone_final.pth`` is used; ``{name}`` in overrides is an earlier step's output
directory), or neither (random init). Other keys: ``device`` ("cpu", "cuda" or "auto"), ``seeds``
(each fine-tuning runs with ``train.seed`` = 0 .. seeds-1), ``bootstrap`` (``resamples``,
``level``, ``seed`` of the confidence intervals over validation images), ``profile`` (a name for
the report), ``profile_steps`` (training steps under the torch profiler; 0: none), ``tide``,
``cost``, ``reuse_pretraining`` (take pre-training products from the content cache,
benchmark/product_cache.py), ``concurrent_runs`` (runs at once on this machine, each its own process
with its share of the cores and data-loading workers, benchmark/scheduler.py; 1: one after the other
in this process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf

from .probe import ProbeSpec
from .search import SearchSpec

__all__ = ["BOOTSTRAP_DEFAULTS", "DEVICES", "BenchmarkSpec", "Initialization", "PretrainStep", "default_benchmark_file",
           "default_num_gpus", "device_description", "load_benchmark", "read_export_meta", "resolve_benchmark_device"]


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
    search: SearchSpec = field(default_factory=SearchSpec)
    probe: ProbeSpec | None = None
    reuse_pretraining: bool = True
    concurrent_runs: int = 1

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
             "seeds", "profile", "profile_steps", "bootstrap", "search", "probe", "reuse_pretraining",
             "concurrent_runs"}
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
    if (set(bootstrap) != set(BOOTSTRAP_DEFAULTS) or int(bootstrap["resamples"]) < 1
            or not 0 < float(bootstrap["level"]) < 1):
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
        search=SearchSpec.from_dict(b.get("search"), f"{path}: benchmark.search"),
        probe=ProbeSpec.from_dict(b.get("probe"), f"{path}: benchmark.probe"),
        reuse_pretraining=bool(b.get("reuse_pretraining", True)),
        concurrent_runs=_positive(b.get("concurrent_runs", 1), f"{path}: benchmark.concurrent_runs"),
    )


def _positive(value, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{where} must be a whole number >= 1 (runs at once on this machine), got {value!r}")
    return value


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


