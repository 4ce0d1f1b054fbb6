"""Draw detections (masks, boxes, class names and scores) on an image with OpenCV."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

__all__ = ["draw_detections", "class_color"]


def class_color(index: int) -> tuple[int, int, int]:
    """A distinct, stable RGB colour per class (golden-ratio hue steps)."""
    h = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(image: np.ndarray, detections: dict, alpha: float = 0.45) -> np.ndarray:
    """Return a copy of ``image`` (``(H, W, 3)`` uint8 RGB) with each detection's mask blended in,
    its box outlined and ``"name score"`` written above it, in its class colour."""
    canvas = image.astype(np.float32).copy()
    masks = detections.get("masks")
    labels = detections["labels"]
    if masks is not None:
        for mask, label in zip(masks, labels):
            color = np.array(class_color(int(label)), np.float32)
            canvas[mask] = (1 - alpha) * canvas[mask] + alpha * color
    out = np.ascontiguousarray(canvas.clip(0, 255).astype(np.uint8))
    thickness = max(1, round(max(image.shape[:2]) / 400))
    scale = max(0.35, max(image.shape[:2]) / 1400)
    for box, label, name, score in zip(detections["boxes"], labels, detections["class_names"], detections["scores"]):
        color = class_color(int(label))
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), color, thickness)
        text = f"{name} {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = max(y0, th + base)
        cv2.rectangle(out, (x0, ty - th - base), (x0 + tw, ty), color, -1)
        cv2.putText(out, text, (x0, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out
