#!/usr/bin/env python
"""Run a trained detector on images; write them with detections drawn, and a JSON of detections.

    python tools/predict.py --config-file OUTPUT_DIR/config.yaml --weights OUTPUT_DIR/model_final.pth \
        --input a.jpg b.jpg photos/ ... --output DIR [--score-threshold 0.5] [--device cpu] \
        [--on-bad-image skip] [key=value ...]

Inputs are image files or folders (searched recursively). Each image is drawn, with masks, boxes,
class names and scores, to DIR/<its path below the inputs' common folder> (``a/x.jpg`` and
``b/x.jpg`` stay apart); DIR/detections.json holds, per image, every detection above the
threshold with its class, score, XYWH box (COCO convention) and RLE mask. DIR may not be an input
folder, and no file already in DIR is replaced except the drawings of an earlier prediction into
it. Nothing is written unless every image succeeds (or is skipped with --on-bad-image skip and
listed under "skipped" in the JSON). Weights holding NaN or inf are refused.
"""

from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vitdet_bench.utils.cli import CommandLineParser  # noqa: E402

logger = logging.getLogger("vitdet_bench.predict")


def main(argv: list[str] | None = None) -> int:
    parser = CommandLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="the run's config (.py or the config.yaml it wrote)")
    parser.add_argument("--weights", required=True, help="detector checkpoint, e.g. model_final.pth")
    parser.add_argument("--input", nargs="+", required=True, help="image files and folders")
    parser.add_argument("--output", required=True, help="folder for the drawn images and detections.json")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the config's train.device)")
    parser.add_argument("--on-bad-image", choices=("error", "skip"), default="error",
                        help="a missing, corrupt or truncated image stops the run (error) or is left out (skip)")
    args = parser.parse_args(argv)

    from vitdet_bench.checkpoint import CheckpointError
    from vitdet_bench.config import LazyConfig
    from vitdet_bench.data.mapper import ImageReadError
    from vitdet_bench.engine import Predictor
    from vitdet_bench.engine.predict_images import collect_images, output_paths, predict_images
    from vitdet_bench.utils.logger import setup_logger

    setup_logger()
    try:
        # Refuse bad inputs and outputs before the model is built.
        images = collect_images(args.input, exclude=args.output)
        output_paths(images, args.output, [d for d in args.input if os.path.isdir(d)])
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    try:
        predictor = Predictor(cfg, args.weights, device=args.device, score_threshold=args.score_threshold)
    except CheckpointError as e:
        parser.exit(1, f"{parser.prog}: error: --weights {args.weights}: {e}\n")
    info = {"config": os.path.abspath(args.config_file), "weights": os.path.abspath(args.weights),
            "score_threshold": args.score_threshold}
    try:
        result = predict_images(predictor, args.input, args.output, on_bad_image=args.on_bad_image, info=info)
    except ImageReadError as e:
        logger.error("%s", e)
        return 1
    logger.info("Wrote %d drawings and %s (%d skipped)", len(result["images"]),
                os.path.join(args.output, "detections.json"), len(result["skipped"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
