#!/usr/bin/env python
"""Train or evaluate a detector described by a LazyConfig (Detectron2's flags and outputs).

    python tools/lazyconfig_train_net.py --config-file configs/demo/mask_rcnn_vit_tiny.py
    python tools/lazyconfig_train_net.py --config-file F --num-gpus 8 train.max_iter=1000
    python tools/lazyconfig_train_net.py --config-file F --eval-only train.init_checkpoint=W.pth
    torchrun --nproc-per-node 8 tools/lazyconfig_train_net.py --config-file F
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vitdet_bench.engine import run  # noqa: E402

if __name__ == "__main__":
    run()
