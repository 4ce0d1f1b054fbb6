"""Representation probes (vitdet_bench/evaluation/probe.py) against DINO's k-NN and a reference
logistic regression; their bootstrap intervals against a direct computation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitdet_bench.evaluation.bootstrap import percentile_interval, resample_counts
from vitdet_bench.evaluation.probe import (
    ProbeResult,
    _fit_logistic,
    knn_predict,
    linear_probe_predict,
    probe_features,
    probe_intervals,
)


def _features(n: int, d: int = 24, classes: int = 4, noise: float = 2.0, seed: int = 0):
    """``n`` samples of a fixed mixture (the class centres do not depend on ``seed``)."""
    centres = torch.randn(classes, d, generator=torch.Generator().manual_seed(99)) * 1.5
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    return centres[labels] + noise * torch.randn(n, d, generator=g), labels


@torch.no_grad()
def dino_knn_classifier(train_features, train_labels, test_features, test_labels, k, T, num_classes):
    """DINO's eval_knn.knn_classifier (facebookresearch/dino), transcribed: features are already
    L2-normalised by its caller; returns its top-1 accuracy in percent."""
    top1, total = 0.0, 0
    train_features = train_features.t()
    num_test_images, num_chunks = test_labels.shape[0], 100
    imgs_per_chunk = max(num_test_images // num_chunks, 1)
    retrieval_one_hot = torch.zeros(k, num_classes)
    for idx in range(0, num_test_images, imgs_per_chunk):
        features = test_features[idx: min((idx + imgs_per_chunk), num_test_images), :]
        targets = test_labels[idx: min((idx + imgs_per_chunk), num_test_images)]
        batch_size = targets.shape[0]
        similarity = torch.mm(features, train_features)
        distances, indices = similarity.topk(k, largest=True, sorted=True)
        candidates = train_labels.view(1, -1).expand(batch_size, -1)
        retrieved_neighbors = torch.gather(candidates, 1, indices)
        retrieval_one_hot.resize_(batch_size * k, num_classes).zero_()
        retrieval_one_hot.scatter_(1, retrieved_neighbors.view(-1, 1), 1)
        distances_transform = distances.clone().div_(T).exp_()
        probs = torch.sum(torch.mul(retrieval_one_hot.view(batch_size, -1, num_classes),
                                    distances_transform.view(batch_size, -1, 1)), 1)
        _, predictions = probs.sort(1, True)
        correct = predictions.eq(targets.data.view(-1, 1))
        top1 = top1 + correct.narrow(1, 0, 1).sum().item()
        total += targets.size(0)
    return top1 * 100.0 / total


def test_knn_equals_dinos_knn_classifier():
    xtr, ytr = _features(600)
    xte, yte = _features(300, seed=1)
    pred = knn_predict(xtr, ytr, xte, 4, k=20, temperature=0.07)
    ours = float((pred == yte).float().mean() * 100)
    dino = dino_knn_classifier(F.normalize(xtr, dim=1), ytr, F.normalize(xte, dim=1), yte, 20, 0.07, 4)
    assert ours == pytest.approx(dino) and 50 < ours < 100
    with pytest.raises(ValueError, match="k=20 needs at least 20 probe training images, got 5"):
        knn_predict(xtr[:5], ytr[:5], xte, 4)


def test_logistic_regression_reaches_the_reference_optimum():
    """The L-BFGS fit is the minimiser of mean cross-entropy + l2 / 2 |W|^2, as scipy finds it."""
    from scipy.optimize import minimize

    x, y = _features(400, d=8)
    x = (x - x.mean(0)) / x.std(0)
    l2 = 1e-2
    w, b = _fit_logistic(x, y, 4, l2)
    xn, yn = x.double().numpy(), y.numpy()

    def objective(theta):
        W, B = theta[:32].reshape(8, 4), theta[32:]
        z = xn @ W + B
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        p = np.exp(logp)
        loss = -logp[np.arange(len(yn)), yn].mean() + 0.5 * l2 * (W ** 2).sum()
        g = p.copy()
        g[np.arange(len(yn)), yn] -= 1
        g /= len(yn)
        return loss, np.concatenate([(xn.T @ g + l2 * W).ravel(), g.sum(0)])

    ref = minimize(objective, np.zeros(36), jac=True, method="L-BFGS-B", options=dict(gtol=1e-10, maxiter=5000))
    torch.testing.assert_close(w, torch.from_numpy(ref.x[:32].reshape(8, 4)), atol=2e-4, rtol=0)
    torch.testing.assert_close(b, torch.from_numpy(ref.x[32:]), atol=2e-4, rtol=0)


def test_linear_probe_selects_l2_on_held_out_training_images_only():
    xtr, ytr = _features(500)
    xte, yte = _features(200, seed=1)
    pred, l2 = linear_probe_predict(xtr, ytr, xte, 4)
    scrambled, l2b = linear_probe_predict(xtr, ytr, xte[torch.randperm(200)], 4)
    assert l2 == l2b  # the choice never looks at the test features
    assert (pred == yte).float().mean() > 0.5


def test_probe_result_holds_every_probe_and_feature_kind():
    xtr, ytr = _features(300)
    xte, yte = _features(100, seed=1)
    r = probe_features({"mean": xtr, "cls": xtr * 2}, ytr.numpy(), {"mean": xte, "cls": xte * 2}, yte.numpy(), 4)
    assert set(r.top1) == {"knn/mean", "linear/mean", "knn/cls", "linear/cls"} and r.num_test == 100
    assert r.top1["knn/mean"] == pytest.approx(r.correct["knn/mean"].mean() * 100)
    only_mean = probe_features({"mean": xtr}, ytr.numpy(), {"mean": xte, "cls": xte}, yte.numpy(), 4)
    assert set(only_mean.top1) == {"knn/mean", "linear/mean"}


def test_probe_intervals_are_paired_bootstraps_over_test_images():
    rng = np.random.default_rng(0)
    good = rng.random(400) < 0.7
    base = rng.random(400) < 0.4
    same = base.copy()
    results = {"random": ProbeResult({"knn/mean": base.mean() * 100}, {"knn/mean": base}, num_test=400),
               "mae": ProbeResult({"knn/mean": good.mean() * 100}, {"knn/mean": good}, num_test=400),
               "moco": ProbeResult({"knn/mean": same.mean() * 100}, {"knn/mean": same}, num_test=400)}
    out = probe_intervals(results, resamples=300, level=0.9, seed=3)
    counts = resample_counts(400, 300, 3)
    boot = counts @ good / 400 * 100
    assert out["mae"]["knn/mean"]["ci"] == pytest.approx(percentile_interval(boot, 0.9))
    diff = boot - counts @ base / 400 * 100
    assert out["mae"]["knn/mean"]["delta_ci"] == pytest.approx(percentile_interval(diff, 0.9))
    assert out["mae"]["knn/mean"]["verdict"] == "above random"
    assert out["moco"]["knn/mean"]["verdict"] == "not distinguishable from random"
    assert out["moco"]["knn/mean"]["delta"] == 0 and out["random"]["knn/mean"]["verdict"] is None
    results["worse"] = ProbeResult({"knn/mean": 10.0}, {"knn/mean": np.zeros(400, bool)}, num_test=400)
    assert probe_intervals(results, resamples=100)["worse"]["knn/mean"]["verdict"] == "below random"
    results["other"] = ProbeResult({"knn/mean": 1.0}, {"knn/mean": np.zeros(10, bool)}, num_test=10)
    with pytest.raises(ValueError, match="different test sets"):
        probe_intervals(results)
