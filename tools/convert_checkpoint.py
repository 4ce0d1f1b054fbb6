#!/usr/bin/env python
"""Convert checkpoints: pre-trained ViTs to the project's backbone format, whole detectors
between this project's layout and Detectron2's, and pre-training runs to the official layouts.

    # a pre-trained backbone (MAE, MoCo v3, BEiT, DeiT, timm, MAE-Lite, a detector's ViT) -> backbone export
    python tools/convert_checkpoint.py --from {mae,mocov3,beit,deit,timm,maelite,vitdet,auto} IN OUT [--patch-size 16]
    # a Detectron2 detector (model-zoo .pkl or .pth) -> this project's detector checkpoint
    python tools/convert_checkpoint.py --from detectron2 --config-file CFG IN.pkl OUT.pth [key=value ...]
    # a detector trained here -> Detectron2 (.pkl: model-zoo pickle of numpy arrays; .pth: torch file)
    python tools/convert_checkpoint.py --to detectron2 --config-file RUN/config.yaml RUN/model_final.pth OUT.pkl
    # a pre-training run here (the whole method) -> the official repository's checkpoint, to continue there
    python tools/convert_checkpoint.py --to {mae,beit,mocov3,deit,convmae} RUN/model_final.pth OUT.pth

Detector conversions build the config's model, load the input into it strictly (a file that does
not fit the config stops with the load report) and write the output from the loaded model.
``train.init_checkpoint`` also reads every input above directly; converting makes the file
explicit, and ``--to detectron2`` lets Detectron2 evaluate a model trained here. ``--to mae`` (``beit``,
``mocov3``, ``deit``, ``convmae``) writes what the official code's ``--resume`` loads (MAE's
``main_pretrain.py``, BEiT's ``run_beit_pretraining.py``, MoCo v3's ``main_moco.py``, DeiT's
``main.py``, ConvMAE's ``main_pretrain.py``).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vitdet_bench.checkpoint import (  # noqa: E402
    FORMATS,
    WRITABLE_LAYOUTS,
    CheckpointError,
    convert_backbone_file,
    convert_detector_file,
    convert_method_file,
)
from vitdet_bench.checkpoint.convert import OUTPUT_LAYOUTS  # noqa: E402
from vitdet_bench.config import InstantiationError  # noqa: E402
from vitdet_bench.utils.cli import CommandLineParser  # noqa: E402
from vitdet_bench.utils.logger import setup_logger  # noqa: E402

BACKBONE_FORMATS = tuple(f for f in FORMATS if f != "vitdet_bench")


def main(argv: list[str] | None = None) -> int:
    parser = CommandLineParser(description=__doc__.split("\n\n")[0], overrides=False,
                               epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--from", dest="format", default="auto",
                        choices=("auto", "detectron2", "detector") + BACKBONE_FORMATS,
                        help="the input's format ('auto' detects it from the container and key names)")
    parser.add_argument("--to", default=None, choices=OUTPUT_LAYOUTS + WRITABLE_LAYOUTS,
                        help="write a whole detector in this layout (vitdet_bench, detectron2; needs --config-file), "
                             "or a pre-training run's model_*.pth in an official method layout (mae, beit, mocov3, "
                             "deit, convmae); default: a backbone export for backbone inputs, 'vitdet_bench' for "
                             "detectors")
    parser.add_argument("--config-file", default=None, metavar="FILE",
                        help="the detector's LazyConfig (needed for detector conversions)")
    parser.add_argument("--patch-size", type=int, default=None,
                        help="resample the patch-embed kernel to this patch size (e.g. 16 for ViT-H/14)")
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("opts", nargs="*", help="config overrides for detector conversions: key=value ...")
    args = parser.parse_args(argv)
    setup_logger()

    method = args.to in WRITABLE_LAYOUTS
    detector = not method and (args.format in ("detectron2", "detector") or args.to is not None
                               or args.config_file is not None)
    try:
        if method:
            convert_method_file(args.input, args.output, args.to)
        elif detector:
            if not args.config_file:
                parser.error("detector conversions (--from detectron2 / detector, --to) need --config-file")
            source = args.format if args.format in ("detectron2", "detector") else "auto"
            convert_detector_file(args.input, args.output, args.config_file, source_format=source,
                                  to=args.to or "vitdet_bench", overrides=args.opts)
        else:
            convert_backbone_file(args.input, args.output, args.format, args.patch_size)
    except (CheckpointError, InstantiationError) as e:
        parser.exit(1, f"error: {args.input}: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
