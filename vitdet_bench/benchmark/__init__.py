"""The main job: the five-initialization benchmark, its TIDE analysis, convergence and cost tables."""

from .collect import RunResult, collect_run
from .cost import measure_cost
from .report import comparison_rows, write_report
from .runner import BenchmarkSpec, Initialization, PretrainStep, Runner, load_benchmark

__all__ = [
    "BenchmarkSpec",
    "Initialization",
    "PretrainStep",
    "RunResult",
    "Runner",
    "collect_run",
    "comparison_rows",
    "load_benchmark",
    "measure_cost",
    "write_report",
]
