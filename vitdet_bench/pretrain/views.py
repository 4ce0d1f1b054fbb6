"""Pre-training views made for a whole batch at once, on tensors, on the model's device.

The per-image path (:class:`~vitdet_bench.pretrain.data.PretrainMapper` with ``batched=False``)
runs a torchvision ``Compose`` on one PIL image per sample, as the official loaders do; on a CPU
that is a large share of a pre-training step (PIL decode, crop, resize and colour ops, one image
at a time in Python). The batched path splits the same ``Compose`` in two:

* :meth:`ViewPlan.draw` (in the mapper, per sample): the random parameters, drawn from torch's
  generator in exactly the order and with exactly the calls the torchvision transforms make
  (``RandomResizedCrop.get_params``, ``ColorJitter.get_params``, the ``torch.rand`` of each
  ``RandomApply`` / ``RandomGrayscale`` / ``RandomSolarize`` / flip), so a sample's seed gives the
  same crop box, flip and colour factors as the per-image path;
* :func:`render_views` (in the model's step, for the batch): the pixels, one tensor op per step
  for every image. A resized crop is two batched matrix products with per-sample resampling
  matrices whose weights are torch's antialiased interpolation weights (the kernel
  ``torchvision.transforms.functional.resized_crop`` runs on a tensor, which uses PIL's filters:
  bicubic with a = -0.5), so each image equals torchvision's resized crop of it (the flip is the
  matrix's row order); the colour ops are torchvision's tensor formulas with per-sample factors.

Not batched (the per-image path remains for them): RandAugment and any transform this module
does not know, which :class:`ViewPlan` refuses by name. Differences to the per-image PIL path,
which is what the official code runs: PIL rounds to uint8 after every op, and MoCo v3's blur is
PIL's box-approximated Gaussian there and an exact Gaussian (same sigma) here.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torchvision import transforms as T

__all__ = ["PendingView", "ViewPlan", "blur_kernel_size", "render_views", "resampling_matrices"]

# torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma).
_GRAY = (0.2989, 0.587, 0.114)


def blur_kernel_size(max_sigma: float) -> int:
    """The Gaussian blur's taps for sigmas up to ``max_sigma``: +-3 sigma (odd, as torchvision needs)."""
    return 2 * int(math.ceil(3 * max_sigma)) + 1


@dataclass
class PendingView:
    """One sample's view, not yet rendered: the source image and the steps drawn for it.

    Args:
        image: ``(3, H, W)`` uint8 source image (shared by the views of one sample).
        steps: one entry per step of the :class:`ViewPlan`, ``None`` where the step does nothing
            for this sample (a ``RandomApply`` that did not fire, no flip).
        plan: the plan that drew them (its step kinds and fixed settings).
    """

    image: torch.Tensor
    steps: list
    plan: "ViewPlan"


def _interp_name(mode) -> str:
    name = mode.value if isinstance(mode, T.InterpolationMode) else str(mode)
    if name not in ("bilinear", "bicubic"):
        raise ValueError(f"batched views resample with 'bilinear' or 'bicubic', not {name!r}")
    return name


class ViewPlan:
    """The batched form of one torchvision view transform (a ``Compose`` or a single transform).

    Known steps: ``RandomResizedCrop`` (bilinear / bicubic, antialiased; MAE-Lite's per-image random
    choice of the two, :class:`~.crop.RandomInterpolationResizedCrop`), ``RandomHorizontalFlip``,
    ``ColorJitter`` (optionally inside ``RandomApply``), ``RandomGrayscale``, ``RandomSolarize``,
    and the project's ``PILGaussianBlur`` (inside ``RandomApply``). Anything else raises, naming it.

    Args:
        transform: the per-image transform (what the per-image path would run).
    """

    def __init__(self, transform: Callable) -> None:
        from .data import PILGaussianBlur

        ops = list(transform.transforms) if isinstance(transform, T.Compose) else [transform]
        # (kind, transform, probability of its RandomApply or None when not wrapped in one)
        self.steps: list[tuple[str, object, float | None]] = []
        for op in ops:
            p = None
            if isinstance(op, T.RandomApply):
                if len(op.transforms) != 1:
                    raise ValueError(f"batched views take RandomApply of one transform, got {op!r}")
                p, op = float(op.p), op.transforms[0]
            if isinstance(op, T.RandomResizedCrop):
                kind = "crop"
                for mode in getattr(op, "interpolations", (op.interpolation,)):
                    _interp_name(mode)
                if not op.antialias:
                    raise ValueError("batched views implement the antialiased resized crop (antialias=True)")
            elif isinstance(op, T.RandomHorizontalFlip):
                kind = "flip"
            elif isinstance(op, T.ColorJitter):
                kind = "jitter"
            elif isinstance(op, T.RandomGrayscale):
                kind = "gray"
            elif isinstance(op, T.RandomSolarize):
                kind = "solarize"
            elif isinstance(op, PILGaussianBlur):
                kind = "blur"
            else:
                raise ValueError(
                    f"{type(op).__name__} cannot be applied to a whole batch (batched views know RandomResizedCrop, "
                    "RandomHorizontalFlip, ColorJitter, RandomGrayscale, RandomSolarize and PILGaussianBlur); "
                    "use the per-image path (PretrainMapper(batched=False)) or drop it from the view")
            if p is not None and kind not in ("jitter", "blur"):
                raise ValueError(f"batched views take RandomApply around ColorJitter or PILGaussianBlur, not {kind}")
            self.steps.append((kind, op, p))
        crops = [s for s in self.steps if s[0] == "crop"]
        if len(crops) != 1:
            raise ValueError(f"a batched view needs exactly one RandomResizedCrop (the output size), got {len(crops)}")
        size = crops[0][1].size
        self.size: tuple[int, int] = (int(size[0]), int(size[1]))

    def draw(self, height: int, width: int) -> list:
        """Draw one sample's parameters from torch's default generator, as the transforms would.

        Args:
            height: the source image's height.
            width: its width.
        Returns:
            one entry per step (``None``: the step leaves this sample unchanged).
        """
        shape = torch.empty(3, height, width, device="meta")  # get_params reads the size only
        out: list = []
        for kind, op, p in self.steps:
            if kind == "crop":
                box = T.RandomResizedCrop.get_params(shape, op.scale, op.ratio)
                # MAE-Lite's crop draws its interpolation per image after the box (Python's random).
                modes = getattr(op, "interpolations", None)
                mode = random.choice(modes) if modes else op.interpolation
                out.append((*box, _interp_name(mode)))
            elif kind == "flip":
                out.append(True if torch.rand(1) < op.p else None)
            elif kind == "jitter":
                if p is not None and p < torch.rand(1):  # RandomApply's draw, then ColorJitter's own
                    out.append(None)
                    continue
                order, b, c, s, h = T.ColorJitter.get_params(op.brightness, op.contrast, op.saturation, op.hue)
                out.append((tuple(int(i) for i in order), b, c, s, h))
            elif kind == "gray":
                out.append(True if torch.rand(1) < op.p else None)
            elif kind == "solarize":
                out.append(True if torch.rand(1).item() < op.p else None)
            elif kind == "blur":
                if p is not None and p < torch.rand(1):
                    out.append(None)
                    continue
                out.append(op.sigma[0] + (op.sigma[1] - op.sigma[0]) * float(torch.rand(())))
        return out

    def __repr__(self) -> str:
        return f"ViewPlan({[k for k, _, _ in self.steps]}, size={self.size})"


def _filter(kind: str, x: torch.Tensor) -> torch.Tensor:
    """torch's antialiasing filters: triangle (bilinear) and Keys' cubic with a = -0.5 (bicubic)."""
    x = x.abs()
    if kind == "bilinear":
        return (1 - x).clamp(min=0)
    a = -0.5
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def resampling_matrices(offsets: torch.Tensor, lengths: torch.Tensor, out_size: int, full_size: int,
                        kind: str) -> torch.Tensor:
    """Per-sample matrices that crop ``[offset, offset + length)`` of an axis and resize it to
    ``out_size``, with the weights of ``F.interpolate(..., antialias=True)`` (align_corners=False).

    torch computes, for output pixel ``o``, ``center = scale (o + 0.5)`` with ``scale = length /
    out_size``, a support of ``interp / 2 * max(scale, 1)`` input pixels either side (interp = 2
    bilinear, 4 bicubic), window ``[floor(center - support + 0.5), floor(center + support + 0.5))``
    clipped to the crop, weights ``filter((j - center + 0.5) / max(scale, 1))`` normalised to sum 1.
    Only the window's taps are computed, then scattered into the dense matrices.

    Args:
        offsets: ``(B,)`` first pixel of each crop along the axis.
        lengths: ``(B,)`` crop lengths.
        out_size: output length.
        full_size: the source axis length (the matrices' width).
        kind: "bilinear" or "bicubic".
    Returns:
        ``(B, out_size, full_size)`` float32 matrices.
    """
    length = lengths.to(torch.float32)[:, None, None]
    scale = length / out_size
    o = torch.arange(out_size, dtype=torch.float32)[None, :, None]
    center = scale * (o + 0.5)
    stretch = scale.clamp(min=1.0)
    support = (1.0 if kind == "bilinear" else 2.0) * stretch
    lo = torch.floor(center - support + 0.5).clamp(min=0)
    hi = torch.minimum(torch.floor(center + support + 0.5), length)
    taps = int(math.ceil(2 * float(support.max()))) + 2  # the widest window, with room for rounding
    j = lo + torch.arange(taps, dtype=torch.float32)[None, None, :]  # (B, out, taps), crop coordinates
    w = _filter(kind, (j - center + 0.5) / stretch)
    w = torch.where(j < hi, w, torch.zeros_like(w))
    w = w / w.sum(-1, keepdim=True)
    cols = (j + offsets.to(torch.float32)[:, None, None]).clamp(max=full_size - 1).long()
    return torch.zeros(len(lengths), out_size, full_size).scatter_add_(2, cols, w)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend`` with a per-sample ratio, on the 0-255 scale."""
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp(0, 255)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] -> HSV (torchvision's tensor formulas)."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_divisor = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / cr_divisor, (maxc - g) / cr_divisor, (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), 1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV -> RGB in [0, 1] (torchvision's tensor formulas; each channel picks its sector's value
    with a gather instead of torchvision's one-hot einsum)."""
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = (i.to(torch.int64) % 6).unsqueeze(1)
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    r = torch.stack((v, q, p, p, t, v), 1).gather(1, i)
    g = torch.stack((t, v, v, q, p, p), 1).gather(1, i)
    b = torch.stack((p, p, t, v, v, q), 1).gather(1, i)
    return torch.cat((r, g, b), 1)


def _adjust(x: torch.Tensor, op: int, factor: torch.Tensor) -> torch.Tensor:
    """ColorJitter's op ``op`` (0 brightness, 1 contrast, 2 saturation, 3 hue) with per-sample factors."""
    if op == 0:
        return _blend(x, torch.zeros_like(x), factor)
    if op == 1:
        return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), factor)
    if op == 2:
        return _blend(x, _gray(x), factor)
    hsv = _rgb_to_hsv(x / 255)
    hue = torch.remainder(hsv[:, 0] + factor.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(torch.stack((hue, hsv[:, 1], hsv[:, 2]), 1)) * 255


def _jitter(x: torch.Tensor, params: Sequence) -> torch.Tensor:
    """Per-sample ColorJitter: at each of the 4 positions, every op is applied to the samples
    whose random order puts it there (torchvision applies them one image at a time)."""
    active = [k for k, p in enumerate(params) if p is not None]
    if not active:
        return x
    x = x.clone()
    for position in range(4):
        for op in range(4):
            rows = [k for k in active if params[k][0][position] == op and params[k][1 + op] is not None]
            if rows:
                idx = torch.tensor(rows, device=x.device)
                factor = torch.tensor([params[k][1 + op] for k in rows], dtype=x.dtype, device=x.device)
                x[idx] = _adjust(x[idx], op, factor)
    return x


def _blur_matrices(sigmas: torch.Tensor, size: int, half: int) -> torch.Tensor:
    """``(R, size, size)`` matrices applying a ``2 half + 1``-tap Gaussian of each sigma along an
    axis with reflect padding (torchvision's ``gaussian_blur``: same kernel, same padding)."""
    t = torch.arange(-half, half + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (t[None, :] / sigmas[:, None]) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)  # (R, K)
    src = torch.arange(size)[:, None] + torch.arange(-half, half + 1)[None, :]  # (size, K)
    src = torch.where(src < 0, -src, torch.where(src >= size, 2 * (size - 1) - src, src))  # reflect
    out = torch.zeros(len(sigmas), size, size)
    return out.scatter_add_(2, src.expand(len(sigmas), -1, -1), kernel[:, None, :].expand(-1, size, -1))


def _separable(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``rows[b] @ x[b, c] @ cols[b]^T`` for every sample and channel: two batched products with
    the channels folded into the matrices' other side (no per-channel copies of the matrices).

    Args:
        x: ``(B, C, H, W)``.
        rows: ``(B, H', H)``.
        cols: ``(B, W', W)``.
    Returns:
        ``(B, C, H', W')``.
    """
    b, c, h, w = x.shape
    t = torch.bmm(rows, x.transpose(1, 2).reshape(b, h, c * w))  # (B, H', C W)
    t = torch.bmm(t.reshape(b, -1, w), cols.transpose(1, 2))  # (B, H' C, W')
    return t.reshape(b, rows.shape[1], c, -1).transpose(1, 2).contiguous()


def _blur(x: torch.Tensor, sigmas: Sequence, kernel_size: int) -> torch.Tensor:
    """Per-sample Gaussian blur (torchvision's ``gaussian_blur``: ``kernel_size`` taps, reflect
    padding) as two batched products with banded matrices."""
    rows = [k for k, s in enumerate(sigmas) if s is not None]
    if not rows:
        return x
    idx = torch.tensor(rows, device=x.device)
    sig = torch.tensor([sigmas[k] for k in rows], dtype=torch.float32)
    _, _, h, w = x.shape
    by = _blur_matrices(sig, h, kernel_size // 2).to(x.device)
    bx = by if h == w else _blur_matrices(sig, w, kernel_size // 2).to(x.device)
    if len(rows) == len(sigmas):
        return _separable(x, by, bx)
    x = x.clone()
    x[idx] = _separable(x[idx], by, bx)
    return x


def _resized_crop(x: torch.Tensor, boxes: Sequence, flips: Sequence[bool], size: tuple[int, int]) -> torch.Tensor:
    """Every sample's ``(i, j, h, w, interpolation)`` crop resized to ``size`` (a flip reverses its
    column matrix)."""
    b, _, height, width = x.shape
    box = torch.tensor([p[:4] for p in boxes], dtype=torch.int64)
    kinds = [p[4] for p in boxes]
    wy = wx = None
    for kind in sorted(set(kinds)):
        ky = resampling_matrices(box[:, 0], box[:, 2], size[0], height, kind)
        kx = resampling_matrices(box[:, 1], box[:, 3], size[1], width, kind)
        pick = torch.tensor([k == kind for k in kinds])[:, None, None]
        wy = ky if wy is None else torch.where(pick, ky, wy)
        wx = kx if wx is None else torch.where(pick, kx, wx)
    wy = wy.to(x.device)
    flip = torch.tensor(flips, dtype=torch.bool)
    wx = torch.where(flip[:, None, None], wx.flip(1), wx).to(x.device)
    return _separable(x, wy, wx).clamp_(0, 255)


def render_views(views: Sequence[PendingView], device: torch.device | str = "cpu") -> torch.Tensor:
    """Render one view of every sample of a batch: ``(B, 3, h, w)`` float on the 0-255 scale.

    All samples must come from the same :class:`ViewPlan` and have same-sized source images (the
    demo pool's fixed-size images; a folder of varied sizes takes the per-image path).

    Args:
        views: the batch's pending views (one per sample).
        device: where the pixels are computed (the model's device).
    """
    plan = views[0].plan
    if any(v.plan is not plan for v in views):
        raise ValueError("render_views: the views of one batch must come from one ViewPlan")
    shapes = {tuple(v.image.shape) for v in views}
    if len(shapes) != 1:
        raise ValueError(f"batched views need same-sized source images, got sizes {sorted(shapes)}; use the "
                         "per-image path (PretrainMapper(batched=False)) for images of varied sizes")
    with torch.autocast(torch.device(device).type, enabled=False):
        x = torch.stack([v.image for v in views]).to(device, non_blocking=True).float()
        steps = list(zip(*[v.steps for v in views]))
        k = 0
        while k < len(plan.steps):
            kind, op, _ = plan.steps[k]
            params = steps[k]
            if kind == "crop":
                # A flip right after the crop is folded into the crop's column matrix.
                flips = [False] * len(views)
                if k + 1 < len(plan.steps) and plan.steps[k + 1][0] == "flip":
                    flips = [p is not None for p in steps[k + 1]]
                    k += 1
                x = _resized_crop(x, params, flips, plan.size)
            elif kind == "flip":
                mask = torch.tensor([p is not None for p in params], device=x.device)
                x = torch.where(mask[:, None, None, None], x.flip(-1), x)
            elif kind == "jitter":
                x = _jitter(x, params)
            elif kind == "gray":
                mask = torch.tensor([p is not None for p in params], device=x.device)
                x = torch.where(mask[:, None, None, None], _gray(x).expand_as(x), x)
            elif kind == "solarize":
                mask = torch.tensor([p is not None for p in params], device=x.device)[:, None, None, None]
                # On the 0-255 scale: the threshold as the uint8 / PIL images of the recipes state it.
                x = torch.where(mask & (x >= float(op.threshold)), 255 - x, x)
            elif kind == "blur":
                x = _blur(x, params, blur_kernel_size(op.sigma[1]))
            k += 1
    return x
