#!/usr/bin/env python
"""Run a trained detector on images; write them with detections drawn, and a JSON of detections.

    python tools/predict.py --config-file OUTPUT_DIR/config.yaml --weights OUTPUT_DIR/model_final.pth \
        --input a.jpg b.jpg ... --output DIR [--score-threshold 0.5] [--device cpu]

For each input, ``DIR/<name>.jpg`` shows masks, boxes, class names and scores; ``DIR/detections.json``
holds, per image, every detection above the threshold with its class, score, XYWH box (COCO
convention) and RLE mask.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="the run's config (.py or the config.yaml it wrote)")
    parser.add_argument("--weights", required=True, help="detector checkpoint, e.g. model_final.pth")
    parser.add_argument("--input", nargs="+", required=True, help="image files")
    parser.add_argument("--output", required=True, help="directory for the drawn images and detections.json")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the config's train.device)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    args = parser.parse_args(argv)

    import cv2
    import numpy as np
    from pycocotools import mask as mask_util

    from vitdet_bench.config import LazyConfig
    from vitdet_bench.engine import Predictor
    from vitdet_bench.utils.logger import setup_logger
    from vitdet_bench.utils.visualizer import draw_detections

    setup_logger()
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    predictor = Predictor(cfg, args.weights, device=args.device, score_threshold=args.score_threshold)
    os.makedirs(args.output, exist_ok=True)
    records = []
    for path in args.input:
        image = predictor._read(path)
        det = predictor(image)
        stem = os.path.splitext(os.path.basename(path))[0]
        drawn = draw_detections(image, det)
        out_path = os.path.join(args.output, f"{stem}.jpg")
        cv2.imwrite(out_path, drawn[..., ::-1])
        items = []
        for k in range(len(det["scores"])):
            x0, y0, x1, y1 = (float(v) for v in det["boxes"][k])
            rle = mask_util.encode(np.asfortranarray(det["masks"][k].astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            items.append({"label": int(det["labels"][k]), "class_name": det["class_names"][k],
                          "score": float(det["scores"][k]), "bbox": [x0, y0, x1 - x0, y1 - y0], "segmentation": rle})
        records.append({"file_name": os.path.abspath(path), "height": int(image.shape[0]), "width": int(image.shape[1]),
                        "output_image": os.path.abspath(out_path), "detections": items})
        print(f"{path}: {len(items)} detections -> {out_path}")
    with open(os.path.join(args.output, "detections.json"), "w") as f:
        json.dump({"config": os.path.abspath(args.config_file), "weights": os.path.abspath(args.weights),
                   "score_threshold": args.score_threshold, "images": records}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
