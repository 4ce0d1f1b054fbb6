"""The main job: the five-initialization benchmark (pre-training, probes, the tuning search, fine-tuning),
its TIDE analysis, convergence, cost and time tables."""

from .collect import RunResult, collect_run
from .cost import measure_cost
from .report import comparison_rows, write_report
from .runner import Runner
from .search import SearchSpec
from .spec import BenchmarkSpec, Initialization, PretrainStep, load_benchmark

__all__ = [
    "BenchmarkSpec",
    "Initialization",
    "PretrainStep",
    "RunResult",
    "Runner",
    "SearchSpec",
    "collect_run",
    "comparison_rows",
    "load_benchmark",
    "measure_cost",
    "write_report",
]
