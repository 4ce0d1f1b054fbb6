"""A fake Slurm on PATH for the submission tests: sbatch records each script and answers with an
id from 1001 on; sacct and squeue answer from files the test writes (``states``, ``reasons``)."""

import os
import re
import stat

__all__ = ["fake_slurm", "sbatch_options"]


def fake_slurm(tmp_path, monkeypatch):
    """Put sbatch / srun / sacct / squeue / scancel stand-ins on PATH; the folder they record into."""
    bin_dir, record = tmp_path / "bin", tmp_path / "slurm"
    bin_dir.mkdir()
    record.mkdir()
    scripts = {
        "sbatch": f'n=$(( $(cat {record}/counter 2>/dev/null || echo 1000) + 1 )); echo $n > {record}/counter; '
                  f'cp "$1" {record}/$n.sh; echo "Submitted batch job $n"',
        "srun": "exit 0",
        "sacct": f'grep "^$2 " {record}/states | cut -d" " -f2',
        "squeue": f'grep "^$2 " {record}/reasons | cut -d" " -f2',
        "scancel": f'echo "$1" >> {record}/cancelled',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/bash\n" + body + "\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return record


def sbatch_options(record, job_id) -> dict:
    """The ``#SBATCH`` options of the script submitted as ``job_id``."""
    lines = (record / f"{job_id}.sh").read_text().splitlines()
    return {m.group(1): m.group(2) for m in (re.match(r"#SBATCH --([\w-]+)=?(.*)", ln) for ln in lines) if m}
