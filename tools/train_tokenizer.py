#!/usr/bin/env python
"""Train the project's VQ tokenizer for BEiT (no download needed); the detection engine's flags.

    python tools/train_tokenizer.py --config-file projects/BEiT/configs/tokenizer_vq_demo.py

Writes tokenizer_final.pth, which a BEiT config takes as tokenizer.kind=vq tokenizer.path=FILE.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vitdet_bench.pretrain.engine import run_train_tokenizer  # noqa: E402

if __name__ == "__main__":
    run_train_tokenizer()
