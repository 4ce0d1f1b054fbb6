"""Shared fixtures: a per-user cache for the demo dataset and a CPU-sized detection config."""

import os
import sys
import tempfile

import pytest

# The demo dataset is generated once and reused by every test (and every later test run).
os.environ.setdefault("VITDET_BENCH_CACHE", os.path.join(tempfile.gettempdir(), "vitdet_bench_test_cache"))

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
FIXTURES = os.path.join(TESTS, "fixtures")  # reference files and config fixtures the tests read

# The tests mirror the package (tests/checkpoint/ tests vitdet_bench/checkpoint/, ...). Some reuse
# another test module's reference implementation (the official BEiT forward, synthetic checkpoints),
# imported by module name, so every test folder is importable whichever file pytest collects first.
for _folder in sorted(os.listdir(TESTS)):
    _path = os.path.join(TESTS, _folder)
    if os.path.isdir(_path) and any(f.startswith("test_") for f in os.listdir(_path)) and _path not in sys.path:
        sys.path.insert(0, _path)
DEMO_CONFIG = os.path.join(REPO, "configs", "demo", "mask_rcnn_vit_tiny.py")

# Overrides that make the demo config fast enough for tests: 2 images per step, evaluation on the
# first 50 validation images.
FAST_OVERRIDES = [
    "dataloader.train.total_batch_size=2",
    "dataloader.test.dataset.names=demo_minival",
    "lr_multiplier.warmup_iters=5",
    "train.log_period=5",
]


@pytest.fixture(scope="session")
def demo_root() -> str:
    from vitdet_bench.data import ensure_demo_dataset

    return ensure_demo_dataset()
