"""Bad arguments of the benchmark tools are named with what to give instead (issue 27, vague ones)."""

import os
import subprocess
import sys

from helpers import REPO


def _tool(name, *argv):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *argv], capture_output=True, text=True,
                          cwd=REPO)


def test_benchmark_pretrain_only_lists_the_valid_method_names():
    """`benchmark_pretrain.py --only mae` said `ValueError: mae`, without the valid names."""
    proc = _tool("benchmark_pretrain.py", "--only", "mae")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--only 'mae': not a method name here; choose from" in proc.stderr
    assert "'MAE (decoder 512 x 8)'" in proc.stderr and "'FastConvMAE (ConvViT, 4 views)'" in proc.stderr


def test_tide_report_output_that_is_a_file_says_so(tmp_path):
    """An existing file as --output gave a raw error (after the TIDE runs)."""
    target = tmp_path / "tide.md"
    target.write_text("mine")
    proc = _tool("tide_report.py", "--gt", "gt.json", "--results", "res.json", "--output", str(target))
    assert proc.returncode == 2 and f"--output {target} is a file, not a folder" in proc.stderr
    assert target.read_text() == "mine"
