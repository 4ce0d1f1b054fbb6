"""Paste RoI mask probabilities into the image, batched (Detectron2's ``paste_masks_in_image``).

torchvision's ``paste_masks_in_image`` rounds each box to integers, resizes one mask at a time and
copies it in with Python-level slicing: about 30 ms per image for 100 detections on a CPU, more
than the whole demo network. Detectron2 instead samples every image pixel's centre from the mask
with ``grid_sample`` at sub-pixel box coordinates. On a GPU, many masks are sampled over the whole
image at once (one kernel call per chunk). On the CPU each mask is sampled only over the pixels its
box can reach (Detectron2's ``skip_empty``): building the whole-image grids of 100 detections took
more time than the demo detector's forward pass. Both give the same pixels for any threshold > 0.
No maintained package exposes this as a function, so it is written here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["paste_masks"]

# Elements of one chunk's (N, H, W) output: 2**24 floats is 64 MB (the sampling grid is twice that).
_CHUNK_ELEMENTS = 1 << 24


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, image_shape: tuple[int, int],
                threshold: float = 0.5) -> torch.Tensor:
    """Binary image masks from per-box mask probabilities.

    Pixel ``(y, x)`` of detection ``i`` samples mask ``i`` bilinearly at the pixel centre's position
    inside box ``i`` (``(x + 0.5 - x0) / (x1 - x0)`` of the mask's width, likewise for rows),
    reading zero outside the mask, and is foreground when that probability is ``>= threshold``.

    Args:
        masks: ``(N, 1, M, M)`` or ``(N, M, M)`` probabilities in ``[0, 1]``.
        boxes: ``(N, 4)`` XYXY boxes in image pixels (fractional, possibly outside the image).
        image_shape: ``(H, W)`` of the output.
        threshold: foreground probability.

    Returns:
        ``(N, H, W)`` bool masks.
    """
    if masks.dim() == 3:
        masks = masks[:, None]
    if masks.dim() != 4 or masks.shape[1] != 1 or boxes.shape != (masks.shape[0], 4):
        raise ValueError(f"paste_masks needs (N, 1, M, M) masks and (N, 4) boxes, got {tuple(masks.shape)} "
                         f"and {tuple(boxes.shape)}")
    h, w = int(image_shape[0]), int(image_shape[1])
    n = masks.shape[0]
    out = torch.zeros((n, h, w), dtype=torch.bool, device=masks.device)
    if n == 0 or h == 0 or w == 0:
        return out
    masks = masks.float()
    boxes = boxes.to(device=masks.device, dtype=torch.float32)
    if masks.device.type == "cpu" and threshold > 0:
        return _paste_in_box_extents(masks, boxes, out, threshold)
    return _paste_whole_image(masks, boxes, out, threshold)


def _paste_whole_image(masks: torch.Tensor, boxes: torch.Tensor, out: torch.Tensor,
                       threshold: float) -> torch.Tensor:
    """:func:`paste_masks` over every image pixel, many masks per ``grid_sample`` call."""
    n, h, w = out.shape
    xs = torch.arange(w, device=masks.device, dtype=torch.float32) + 0.5
    ys = torch.arange(h, device=masks.device, dtype=torch.float32) + 0.5
    chunk = max(1, _CHUNK_ELEMENTS // (h * w))
    for start in range(0, n, chunk):
        b = boxes[start : start + chunk]
        x0, y0, x1, y1 = b[:, 0:1], b[:, 1:2], b[:, 2:3], b[:, 3:4]
        # grid_sample's normalised coordinates: -1 and 1 are the mask's outer edges.
        gx = (xs[None] - x0) / (x1 - x0).clamp(min=1e-6) * 2 - 1  # (n, W)
        gy = (ys[None] - y0) / (y1 - y0).clamp(min=1e-6) * 2 - 1  # (n, H)
        grid = torch.stack((gx[:, None, :].expand(-1, h, -1), gy[:, :, None].expand(-1, -1, w)), dim=3)
        probs = F.grid_sample(masks[start : start + chunk], grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False)
        out[start : start + chunk] = probs[:, 0] >= threshold
    return out


def _paste_in_box_extents(masks: torch.Tensor, boxes: torch.Tensor, out: torch.Tensor,
                          threshold: float) -> torch.Tensor:
    """:func:`paste_masks` one mask at a time over the pixels it can reach.

    A pixel centre more than half a mask cell outside the box samples only the zero padding
    (probability 0 < threshold), so the region is the box widened by half a cell on each side.
    """
    h, w = out.shape[1:]
    m_h, m_w = masks.shape[2:]
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        bw, bh = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
        # Pixel x is reached when its centre x + 0.5 lies within half a cell (bw / (2 m_w)) of the box.
        lo_x = max(0, math.floor(x0 - bw / (2 * m_w) - 0.5))
        hi_x = min(w, math.ceil(x1 + bw / (2 * m_w) - 0.5) + 1)
        lo_y = max(0, math.floor(y0 - bh / (2 * m_h) - 0.5))
        hi_y = min(h, math.ceil(y1 + bh / (2 * m_h) - 0.5) + 1)
        if lo_x >= hi_x or lo_y >= hi_y:
            continue
        xs = torch.arange(lo_x, hi_x, dtype=torch.float32) + 0.5
        ys = torch.arange(lo_y, hi_y, dtype=torch.float32) + 0.5
        gx = (xs - x0) / bw * 2 - 1
        gy = (ys - y0) / bh * 2 - 1
        grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=2)[None]  # (1, rows, cols, 2)
        probs = F.grid_sample(masks[i : i + 1], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out[i, lo_y:hi_y, lo_x:hi_x] = probs[0, 0] >= threshold
    return out
