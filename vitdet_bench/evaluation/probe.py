"""Representation probes: did pre-training learn anything an image classifier can read?

Researchers judge a pre-training method first by a probe of its frozen encoder: DINO, MoCo v3 and
MAE all report k-NN and / or linear accuracy. Two probes, each on two kinds of features:

* k-NN (DINO's ``eval_knn``): L2-normalised features, cosine similarity to every training image,
  the ``k`` nearest vote with weight ``exp(similarity / T)`` (k = 20, T = 0.07);
* linear: multinomial logistic regression on standardised frozen features (the training set's
  mean / std, as MAE's linear probe puts a non-affine BatchNorm before its head), solved to
  convergence by full-batch L-BFGS (CLIP's linear-probe protocol), its L2 strength picked from a
  short list on the last 20% of the probe's training images (never on its test images).

Features: ``mean``, the patch tokens of the last block after the encoder's final norm, averaged;
``cls``, the cls token after the final norm, where the encoder has one. Every probe returns the
per-image correctness on the test images, so accuracies get bootstrap intervals and encoders
paired differences (the same resamples for all): see :func:`probe_intervals`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .bootstrap import percentile_interval, resample_counts

__all__ = ["ProbeResult", "encoder_features", "knn_predict", "linear_probe_predict", "probe_features",
           "probe_intervals", "KNN_K", "KNN_TEMPERATURE"]

logger = logging.getLogger(__name__)

KNN_K = 20
KNN_TEMPERATURE = 0.07
LINEAR_L2 = (1e-4, 1e-3, 1e-2)  # candidates for the logistic regression's L2 strength (per mean loss)


@dataclass
class ProbeResult:
    """One encoder's probe accuracies (percent) and per-test-image correctness.

    Attributes:
        top1: ``{"knn/mean": 61.2, "linear/mean": ..., "knn/cls": ..., "linear/cls": ...}``.
        correct: the same keys -> ``(N_test,)`` bool arrays.
        linear_l2: the L2 strength chosen for each linear probe.
        num_train: probe training images.
        num_test: probe test images.
    """

    top1: dict[str, float] = field(default_factory=dict)
    correct: dict[str, np.ndarray] = field(default_factory=dict)
    linear_l2: dict[str, float] = field(default_factory=dict)
    num_train: int = 0
    num_test: int = 0


@torch.no_grad()
def encoder_features(encoder, images: np.ndarray, pixel_mean, pixel_std, batch_size: int = 250,
                     device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Frozen features of ``images`` (``(N, S, S, 3)`` uint8 RGB at the encoder's input size).

    Args:
        encoder: a :class:`~vitdet_bench.pretrain.PretrainEncoder` (all tokens, after its final norm).
        images: the probe images.
        pixel_mean, pixel_std: the encoder's input statistics on the 0-255 scale.
        batch_size: images per forward.
        device: where to run.
    Returns:
        ``{"mean": (N, D)}`` and, when the encoder has a cls token, ``"cls": (N, D)`` (float32, CPU).
    """
    encoder = encoder.eval().to(device)
    mean = torch.as_tensor(pixel_mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.as_tensor(pixel_std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    prefix = encoder.num_prefix_tokens
    out: dict[str, list[torch.Tensor]] = {"mean": [], "cls": []}
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.array(images[start:start + batch_size])).to(device)  # a copy: memmaps are read-only
        x = (x.permute(0, 3, 1, 2).float() - mean) / std
        tokens = encoder(x).float()
        out["mean"].append(tokens[:, prefix:].mean(1).cpu())
        if prefix:
            out["cls"].append(tokens[:, 0].cpu())
    return {k: torch.cat(v) for k, v in out.items() if v}


def knn_predict(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, num_classes: int,
                k: int = KNN_K, temperature: float = KNN_TEMPERATURE, chunk: int = 500) -> torch.Tensor:
    """DINO's weighted k-NN: ``(N_test,)`` predicted classes.

    Args:
        train: ``(N, D)`` training features (normalised here).
        train_labels: ``(N,)`` their classes.
        test: ``(M, D)`` test features.
        num_classes: classes.
        k: neighbours.
        temperature: the vote weight is ``exp(cosine / temperature)``.
        chunk: test images per similarity block.
    """
    if k > len(train):
        raise ValueError(f"k-NN with k={k} needs at least {k} probe training images, got {len(train)}")
    train = F.normalize(train.float(), dim=1)
    test = F.normalize(test.float(), dim=1)
    preds = []
    for start in range(0, len(test), chunk):
        sim, idx = (test[start:start + chunk] @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), num_classes).scatter_add_(1, train_labels[idx], (sim / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression minimising ``mean CE + l2 / 2 * |W|^2`` (bias not penalised), L-BFGS."""
    x = x.double()
    w = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def linear_probe_predict(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, num_classes: int,
                         l2_candidates: tuple[float, ...] = LINEAR_L2,
                         holdout: float = 0.2) -> tuple[torch.Tensor, float]:
    """A linear classifier on standardised frozen features: ``((M,) predictions, chosen l2)``.

    The L2 strength is chosen on the last ``holdout`` of the training features (fit on the rest),
    then the classifier is refit on all of them.
    """
    mean, std = train.mean(0), train.std(0).clamp(min=1e-6)
    xtr, xte = (train - mean) / std, (test - mean) / std
    cut = int(round(len(xtr) * (1 - holdout)))
    best, best_acc = l2_candidates[0], -1.0
    for l2 in l2_candidates:
        w, b = _fit_logistic(xtr[:cut], train_labels[:cut], num_classes, l2)
        acc = float(((xtr[cut:].double() @ w + b).argmax(1) == train_labels[cut:]).float().mean())
        if acc > best_acc:
            best, best_acc = l2, acc
    w, b = _fit_logistic(xtr, train_labels, num_classes, best)
    return (xte.double() @ w + b).argmax(1), best


def probe_features(train: dict[str, torch.Tensor], train_labels: np.ndarray, test: dict[str, torch.Tensor],
                   test_labels: np.ndarray, num_classes: int) -> ProbeResult:
    """k-NN and linear probes on every feature kind present in both ``train`` and ``test``."""
    ytr = torch.as_tensor(np.asarray(train_labels), dtype=torch.int64)
    yte = np.asarray(test_labels)
    result = ProbeResult(num_train=len(ytr), num_test=len(yte))
    for kind in [k for k in ("mean", "cls") if k in train and k in test]:
        knn = knn_predict(train[kind], ytr, test[kind], num_classes).numpy()
        lin, l2 = linear_probe_predict(train[kind], ytr, test[kind], num_classes)
        for name, pred in ((f"knn/{kind}", knn), (f"linear/{kind}", lin.numpy())):
            result.correct[name] = pred == yte
            result.top1[name] = float(result.correct[name].mean() * 100)
        result.linear_l2[f"linear/{kind}"] = l2
    return result


def probe_intervals(results: dict[str, ProbeResult], baseline: str = "random", resamples: int = 1000,
                    level: float = 0.95, seed: int = 0) -> dict[str, dict[str, dict]]:
    """Bootstrap intervals over the test images for every encoder's probe accuracies, and the
    paired difference to ``baseline``'s (the same resamples for every encoder and probe).

    Returns:
        ``{encoder: {probe: {"top1", "ci", "delta", "delta_ci", "verdict"}}}``; verdict "above random"
        when the difference's interval lies above 0, "below random" when below, else "not
        distinguishable from random" (``None`` for the baseline itself or without it).
    """
    sizes = {r.num_test for r in results.values()}
    if len(sizes) != 1:
        raise ValueError(f"probe results were computed on different test sets ({sorted(sizes)} images)")
    counts = resample_counts(sizes.pop(), resamples, seed).astype(np.float64)
    counts /= counts.sum(1, keepdims=True)
    base = results.get(baseline)
    out: dict[str, dict[str, dict]] = {}
    for name, r in results.items():
        out[name] = {}
        for probe, correct in r.correct.items():
            boot = counts @ correct.astype(np.float64) * 100
            row = {"top1": r.top1[probe], "ci": percentile_interval(boot, level), "delta": None, "delta_ci": None,
                   "verdict": None}
            if base is not None and name != baseline and probe in base.correct:
                diff = boot - counts @ base.correct[probe].astype(np.float64) * 100
                lo, hi = percentile_interval(diff, level)
                row.update(delta=r.top1[probe] - base.top1[probe], delta_ci=(lo, hi),
                           verdict="above random" if lo > 0 else "below random" if hi < 0 else
                           "not distinguishable from random")
            out[name][probe] = row
    return out
