"""The benchmark probe's encoders (vitdet_bench/benchmark/probe.py): an export probed is the encoder
its method trained, whatever the detection config adds; random init is the detector's ViT."""

import os

import numpy as np
import pytest
import torch

from vitdet_bench.benchmark.probe import ProbeSpec, probe_encoder_for, run_probe
from vitdet_bench.checkpoint import save_backbone_export
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.evaluation.probe import encoder_features

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _method_encoder(config: str):
    """The method's pre-training encoder as its demo config builds it, with every weight random
    (so a wrong copy cannot pass by sharing an initialisation)."""
    cfg = LazyConfig.load(os.path.join(REPO, config))
    torch.manual_seed(0)
    encoder = instantiate(cfg.model.encoder)
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            p.copy_(torch.randn_like(p) * (0.05 if "bias_table" not in name else 0.5))
        if encoder.vit.pos_embed is not None:
            encoder.vit.pos_embed.copy_(torch.randn_like(encoder.vit.pos_embed) * 0.1)
    return encoder.eval()


@pytest.mark.parametrize("method,detection", [("projects/MAE/configs/mae_vit_tiny_demo.py",
                                               "configs/demo/bench/mae.py"),
                                              ("projects/BEiT/configs/beit_vit_tiny_demo.py",
                                               "configs/demo/bench/beit.py"),
                                              ("projects/Supervised/configs/supervised_vit_tiny_demo.py",
                                               "configs/demo/bench/supervised.py")])
def test_an_export_is_probed_as_its_method_encoded(method, detection, tmp_path):
    """Same tokens after the final norm as the method's encoder, though the detection config adds
    window blocks, shared relative biases (zero unless the file has them) and, for BEiT, absolute
    positions it never pre-trained with."""
    encoder = _method_encoder(method)
    path = str(tmp_path / "backbone_final.pth")
    save_backbone_export(encoder.export_state(), path, {"method": "test"})
    probe, mean, std, notes = probe_encoder_for(LazyConfig.load(os.path.join(REPO, detection)), path)
    x = torch.randn(3, 3, encoder.img_size, encoder.img_size)
    with torch.no_grad():
        torch.testing.assert_close(probe(x), encoder(x), atol=1e-5, rtol=1e-5)
    assert ("no absolute positions" in notes) == ("BEiT" in method)
    images = np.random.default_rng(0).integers(0, 255, (4, encoder.img_size, encoder.img_size, 3), dtype=np.uint8)
    feats = encoder_features(probe, images, mean, std)
    with torch.no_grad():
        ref = encoder((torch.from_numpy(images).permute(0, 3, 1, 2).float() - torch.tensor(mean).view(1, 3, 1, 1))
                      / torch.tensor(std).view(1, 3, 1, 1))
    torch.testing.assert_close(feats["cls"], ref[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(feats["mean"], ref[:, 1:].mean(1), atol=1e-5, rtol=1e-5)


def test_random_init_is_the_detectors_vit_and_a_convvit_is_not_probed():
    from vitdet_bench.engine.defaults import build_model

    cfg = LazyConfig.load(os.path.join(REPO, "configs/demo/bench/random.py"))
    encoder, mean, std, notes = probe_encoder_for(cfg, "")
    again, *_ = probe_encoder_for(cfg, "")
    for (name, a), b in zip(encoder.vit.state_dict().items(), again.vit.state_dict().values()):
        assert torch.equal(a, b), name  # seeded: the same random encoder every time
    cfg.model.num_classes = 4
    cfg.train.device = "cpu"
    torch.manual_seed(0)
    detector_vit = build_model(cfg).backbone.bottom_up.net
    assert encoder.vit.patch_embed.proj.weight.shape == detector_vit.patch_embed.proj.weight.shape
    assert encoder.vit.depth == detector_vit.depth and encoder.img_size == 128 and notes == ""
    conv = LazyConfig.load(os.path.join(REPO, "configs/demo/bench/convvit_convmae.py"))
    assert probe_encoder_for(conv, "")[0] is None and "not a plain ViT" in probe_encoder_for(conv, "")[3]


def test_probe_results_are_cached_by_checkpoint_and_settings(tmp_path, monkeypatch):
    cfg = LazyConfig.load(os.path.join(REPO, "configs/demo/bench/random.py"))
    spec = ProbeSpec(train=40, test=20)
    cache = str(tmp_path / "probe" / "random.json")
    first, _ = run_probe(cfg, "", spec, cache)
    assert first.num_train == 40 and first.num_test == 20 and set(first.top1) >= {"knn/mean", "linear/cls"}
    import vitdet_bench.benchmark.probe as probe_module

    monkeypatch.setattr(probe_module, "probe_encoder_for", lambda *a: pytest.fail("the cache was not used"))
    again, _ = run_probe(cfg, "", spec, cache)
    assert again.top1 == first.top1 and all(np.array_equal(again.correct[k], first.correct[k]) for k in first.correct)
    monkeypatch.undo()
    other, _ = run_probe(cfg, "", ProbeSpec(train=40, test=24), cache)  # other settings: probed again
    assert other.num_test == 24
