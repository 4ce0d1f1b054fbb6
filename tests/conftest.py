"""Shared fixtures: a per-user cache for the demo dataset (``demo_root``).

Paths and overrides the tests share live in ``tests/helpers`` (``from helpers import REPO``); pytest
puts ``tests/`` on ``sys.path`` because this file is there, and nothing else: a test module imports
helpers, never another test module. The names below stay importable from here for test modules
written before ``tests/helpers`` existed.
"""

import os
import tempfile

import pytest

from helpers import DEMO_CONFIG, FAST_OVERRIDES, FIXTURES, REPO, TESTS

__all__ = ["DEMO_CONFIG", "FAST_OVERRIDES", "FIXTURES", "REPO", "TESTS", "demo_root"]

# The demo dataset is generated once and reused by every test (and every later test run).
os.environ.setdefault("VITDET_BENCH_CACHE", os.path.join(tempfile.gettempdir(), "vitdet_bench_test_cache"))


@pytest.fixture(scope="session")
def demo_root() -> str:
    from vitdet_bench.data import ensure_demo_dataset

    return ensure_demo_dataset()
