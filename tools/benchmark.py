#!/usr/bin/env python
"""The main job: compare ViT initializations for detection, from one command (see
``vitdet_bench/benchmark/cli.py`` or ``--help`` for every option).

    python tools/benchmark.py                      # the demo benchmark: GPU profile with CUDA, else CPU
    python tools/benchmark.py --quick              # the same pipeline with short schedules
    python tools/benchmark.py --config-file configs/benchmark/coco_vit_b.py --print-commands --num-gpus 8
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vitdet_bench.benchmark.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
