#!/usr/bin/env python
"""Pre-train a backbone (MAE, MoCo v3, BEiT, supervised, feature-reconstruction MIM / EVA, MAE-Lite;
ConvMAE, FastConvMAE on the ConvViT) from a LazyConfig, with the detection engine's flags.

    python tools/pretrain_net.py --config-file projects/MAE/configs/mae_vit_tiny_demo.py
    python tools/pretrain_net.py --config-file projects/MAE/configs/mae_vit_b_800ep.py --num-gpus 8 [--resume]

Writes what detection training writes (config.yaml, log.txt, metrics.json, model_*.pth) plus
backbone_*.pth / backbone_final.pth, which train.init_checkpoint= of a detection config loads.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vitdet_bench.pretrain.engine import run_pretrain  # noqa: E402

if __name__ == "__main__":
    run_pretrain()
