"""Detectron2 interoperability: names, class layout, outputs, model-zoo ``.pkl`` files, strict init.

The reference is Detectron2 itself. ``tests/fixtures/detectron2_golden.json`` was produced outside
this repository by running Detectron2's own modules from source (facebookresearch/detectron2 at
02b5c4e2: ``ViT``, ``SimpleFeaturePyramid``, ``FPN``, ``StandardRPNHead``, ``FastRCNNConvFCHead``,
``FastRCNNOutputLayers``, ``MaskRCNNConvUpsampleHead``, ``StandardROIHeads``, ``CascadeROIHeads``,
built from its ``configs/common/models/mask_rcnn_vitdet.py`` and the ViTDet cascade config; the
benchmarking paper's ``ViTUp1`` + ``BEiTDet`` from ronghanghu/detectron2_vitdet at 47a8733c) with
its C++ extension stubbed out (the ViTDet path never calls it). Each model was shrunk exactly as
:func:`tiny_detector` shrinks ours, every floating-point tensor was set by :func:`seeded_weights`
from its Detectron2 name, and :func:`golden_image` was run in eval mode. The file keeps the
Detectron2 state-dict names and shapes, and compact outputs: per-level feature statistics with 8
sampled values, the top proposals, the top detections (boxes, scores, classes, counts) and mask
probability statistics (torchvision's test style). Our model must reproduce them from the same
Detectron2-named weights, converted by :func:`vitdet_bench.checkpoint.from_detectron2`.
"""

import fractions
import json
import os
import pickle
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

from vitdet_bench.checkpoint import (
    Checkpointer,
    CheckpointError,
    detectron2_names,
    is_detectron2_checkpoint,
    load_backbone_checkpoint,
    load_detectron2_pickle,
    load_init_checkpoint,
    safe_torch_load,
    to_detectron2,
)
from vitdet_bench.config import InstantiationError, LazyConfig, instantiate

from helpers import DEMO_CONFIG, FIXTURES, REPO

GOLDEN = json.load(open(os.path.join(FIXTURES, "detectron2_golden.json"), encoding="utf-8"))
MODELS = ("mask_rcnn_vitdet", "cascade_mask_rcnn_vitdet", "bench_mask_rcnn_vit_beit")
CONFIGS = {
    "mask_rcnn_vitdet": "mask_rcnn_vitdet.py",
    "cascade_mask_rcnn_vitdet": "cascade_mask_rcnn_vitdet.py",
    "bench_mask_rcnn_vit_beit": "mask_rcnn_vit.py",
}


def seeded_weights(shapes: dict[str, list[int]], float_names: set[str] | None = None) -> dict[str, torch.Tensor]:
    """Deterministic values for every floating-point tensor, from its (Detectron2) name alone:
    numpy's PCG64 seeded with crc32(name), mapped by kind (norm weights near 1, small biases,
    positive running variances, fan-in scaled weights)."""
    out = {}
    for name, shape in shapes.items():
        if float_names is not None and name not in float_names:
            continue
        u = np.random.default_rng(zlib.crc32(name.encode())).random(int(np.prod(shape))).reshape(shape)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "running_var":
            v = 0.5 + u
        elif leaf in ("running_mean", "bias"):
            v = 0.2 * (u - 0.5)
        elif name.endswith(("pos_embed", "rel_pos_h", "rel_pos_w", "relative_position_bias_table")):
            v = 0.4 * (u - 0.5)
        elif leaf.startswith("gamma"):
            v = 0.1 + 0.1 * (u - 0.5)
        elif len(shape) == 1:
            v = 1.0 + 0.4 * (u - 0.5)
        else:
            gain = 4.0 if "cls_score" in name else 1.0
            v = (u - 0.5) * 2 * gain * np.sqrt(3.0 / int(np.prod(shape[1:])))
        out[name] = torch.from_numpy(v.astype(np.float32))
    return out


def golden_image(width: int) -> torch.Tensor:
    """``(3, 128, width)`` uint8: seeded noise over a gradient, with three flat rectangles."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:128, 0:width]
    img = np.stack([2 * x, 2 * y, 255 - x - y]).astype(np.float64) % 256
    img = 0.5 * img + 0.5 * rng.integers(0, 256, size=(3, 128, width))
    for (y0, y1, x0, x1), color in (((10, 60, 8, 50), (250, 30, 30)), ((70, 120, 40, 90), (20, 200, 40)),
                                     ((20, 50, 60, 94), (30, 40, 220))):
        img[:, y0:y1, x0:min(x1, width)] = np.array(color)[:, None, None]
    return torch.from_numpy(img.astype(np.uint8))


def tiny_cfg(name: str):
    """Our config for ``name``, shrunk as the goldens' Detectron2 models: ViT 64-d, 4 blocks, 4
    heads, 128-px input, window 3 (padded to 9 on the 8x8 grid) in blocks 0 and 2, 32-channel
    neck and heads, 4conv1fc(64) box heads, 4-conv mask head, 3 classes."""
    cfg = LazyConfig.load(os.path.join(REPO, "configs", "common", "models", CONFIGS[name]))
    m = cfg.model
    m.num_classes = 3
    bench = name.startswith("bench")
    net = m.backbone.bottom_up.net if bench else m.backbone.net
    net.embed_dim, net.depth, net.num_heads, net.img_size = 64, 4, 4, 128
    net.window_size, net.window_block_indexes, net.drop_path_rate = 3, [0, 2], 0.0
    if bench:  # BEiTDet as BENCH's BEiT config: shared bias tables, layer scale, one qkv bias
        net.out_block_indexes = [0, 1, 2, 3]
        net.rel_pos_bias, net.init_values = "shared", 0.1
        m.backbone.bottom_up.in_features = ["block0", "block1", "block2", "block3"]
    m.backbone.out_channels, m.backbone.square_pad = 32, 128
    cascade = "box_heads" in m.roi_heads
    for head in (m.roi_heads.box_heads if cascade else [m.roi_heads.box_head]):
        head.conv_dims, head.fc_dims = [32] * 4, [64]
    for predictor in (m.roi_heads.box_predictors if cascade else [m.roi_heads.box_predictor]):
        predictor.in_channels = 64
    m.roi_heads.mask_head.conv_dims = [32] * 4
    m.roi_heads.mask_predictor.in_channels = m.roi_heads.mask_predictor.dim_reduced = 32
    return cfg


def tiny_detector(name: str) -> torch.nn.Module:
    return instantiate(tiny_cfg(name).model).eval()


def detectron2_state(name: str, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The golden run's weights, by Detectron2 name (integer buffers as our export writes them)."""
    exported = to_detectron2(model)
    weights = seeded_weights(GOLDEN[name]["detectron2_state_dict"],
                             {k for k, v in exported.items() if v.is_floating_point()})
    return {k: weights.get(k, v) for k, v in exported.items()}


def close(actual, expected, rtol=1e-5, atol=1e-5):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float64),
                               torch.as_tensor(expected, dtype=torch.float64), rtol=rtol, atol=atol)


def checksum(t: torch.Tensor) -> int:
    return int((t.flatten().long() * torch.arange(1, t.numel() + 1)).sum())


@pytest.mark.parametrize("name", MODELS)
def test_exported_names_and_shapes_are_detectron2s(name):
    """to_detectron2 writes exactly the tensors Detectron2's own modules hold, under their names
    and shapes (and BEiT's relative_position_index buffers with BEiTDet's values)."""
    exported = to_detectron2(tiny_detector(name))
    assert {k: list(v.shape) for k, v in exported.items()} == GOLDEN[name]["detectron2_state_dict"]
    for k, expected in GOLDEN[name].get("int_buffers", {}).items():
        assert checksum(exported[k]) == expected, k


@pytest.mark.parametrize("name", MODELS)
def test_converted_weights_give_detectron2s_outputs(name):
    """Backbone + neck features, RPN proposals, final boxes / scores / classes and mask
    probabilities equal Detectron2's from the same weights (converted from its layout)."""
    golden = GOLDEN[name]
    model = tiny_detector(name)
    report = load_init_checkpoint(model, {"model": detectron2_state(name, model), "__author__": "test"}, source=name)
    assert report.format == "detectron2" and report.missing_unexpected == [] and report.unused == []
    width = golden["image_width"]
    with torch.no_grad():
        images = model.preprocess([{"image": golden_image(width), "height": 128, "width": width}])
        feats = model.backbone(images.tensors)
        assert list(feats) == list(golden["features"])
        for level, st in golden["features"].items():
            f = feats[level].double()
            assert list(f.shape) == st["shape"]
            close([f.mean(), f.std(), f.abs().max()], [st["mean"], st["std"], st["abs_max"]])
            close(f.flatten()[st["sample_index"]], st["sample"])
        proposals, _ = model.rpn(images, feats)
        assert len(proposals[0]) == golden["proposals"]["count"]
        close(proposals[0][:20], golden["proposals"]["boxes_top20"], atol=1e-3)
        detections, _ = model.roi_heads(feats, proposals, images.image_sizes)
    det, expected = detections[0], golden["detections"]
    assert len(det["boxes"]) == expected["count"]
    labels = det["labels"] - 1  # torchvision's background is 0
    assert torch.bincount(labels, minlength=3).tolist() == expected["class_counts"]
    close(det["scores"].double().sum(), expected["score_sum"], rtol=1e-5)
    close(det["boxes"].double().mean(0), expected["box_mean"], atol=1e-3)
    # Scores differ from Detectron2's by ~1e-6 and no two of the top 30 are closer than 1e-4,
    # so the order is stable.
    assert labels[:30].tolist() == expected["classes_top30"]
    close(det["scores"][:30], expected["scores_top30"])
    close(det["boxes"][:30], expected["boxes_top30"], atol=1e-3)
    for probs, st in zip(det["masks"][:5], expected["mask_probs_top5"]):
        close(probs.double().mean(), st["mean"])
        close(probs.flatten()[st["sample_index"]], st["sample"])


@pytest.mark.parametrize("name", MODELS)
def test_round_trips_are_exact(name):
    """ours -> Detectron2 -> ours gives every tensor back (the background slots Detectron2 does
    not have come back as zeros and are never read); Detectron2 -> ours -> Detectron2 is exact."""
    model = tiny_detector(name)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    exported = to_detectron2(model)
    back = tiny_detector(name)
    report = load_init_checkpoint(back, {"model": exported, "__author__": "test"}, source="round trip")
    assert report.missing_unexpected == [] and report.unused == [] and report.resized == []
    dead = {k: rows for k, rows in (("box_predictor.bbox_pred", 4), ("mask_predictor.mask_fcn_logits", 1))}
    for k, v in back.state_dict().items():
        rows = next((r for part, r in dead.items() if part in k), 0)
        if rows:
            assert torch.equal(v[rows:], original[k][rows:]), k
            assert not v[:rows].any(), k
        else:
            assert torch.equal(v, original[k]), k
    again = to_detectron2(back)
    assert again.keys() == exported.keys()
    for k in exported:
        assert torch.equal(again[k], exported[k]), k


def test_class_layout_by_hand():
    """Detectron2: scores [c0, c1, c2, bg], deltas 4 per class, masks 1 per class.
    torchvision: scores [bg, c0, c1, c2], deltas and masks with a leading background slot."""
    model = tiny_detector("mask_rcnn_vitdet")
    exported = to_detectron2(model)
    cls = torch.arange(4 * 64, dtype=torch.float32).reshape(4, 64)
    box = torch.arange(12 * 64, dtype=torch.float32).reshape(12, 64) + 1000
    mask = torch.arange(3 * 32, dtype=torch.float32).reshape(3, 32, 1, 1) + 5000
    exported.update({"roi_heads.box_predictor.cls_score.weight": cls, "roi_heads.box_predictor.bbox_pred.weight": box,
                     "roi_heads.mask_head.predictor.weight": mask})
    report = load_init_checkpoint(model, {"model": exported, "__author__": "test"}, source="by hand")
    heads = model.roi_heads
    assert torch.equal(heads.box_predictor.cls_score.weight, cls[[3, 0, 1, 2]])
    assert torch.equal(heads.box_predictor.bbox_pred.weight, torch.cat((torch.zeros(4, 64), box)))
    assert torch.equal(heads.mask_predictor.mask_fcn_logits.weight, torch.cat((torch.zeros(1, 32, 1, 1), mask)))
    converted = dict(report.converted)
    assert "background moved from last" in converted["roi_heads.box_predictor.cls_score.weight"]


def model_zoo_pickle(path, model, name="mask_rcnn_vitdet", drop=()) -> dict[str, np.ndarray]:
    """A Detectron2 model-zoo file as its .pkl files are: {"model": {name: numpy array}, "__author__"}."""
    arrays = {k: v.numpy() for k, v in detectron2_state(name, model).items() if not k.startswith(drop)}
    with open(path, "wb") as f:
        pickle.dump({"model": arrays, "__author__": "Detectron2 Model Zoo"}, f, protocol=2)
    return arrays


def test_model_zoo_pkl_loads_whole_through_init_checkpoint(tmp_path):
    model = tiny_detector("mask_rcnn_vitdet")
    path = str(tmp_path / "model_final_61ccd1.pkl")
    arrays = model_zoo_pickle(path, model)
    assert is_detectron2_checkpoint(load_detectron2_pickle(path))
    Checkpointer(model, str(tmp_path)).load(path, full=False)  # strict by default
    report = load_init_checkpoint(model, path)
    assert report.format == "detectron2"
    assert report.missing_unexpected == [] and report.missing_expected == [] and report.unused == []
    assert len(report.loaded) == len(model.state_dict())
    net = model.backbone.net
    np.testing.assert_array_equal(net.blocks[2].attn.rel_pos_h.detach().numpy(),
                                  arrays["backbone.net.blocks.2.attn.rel_pos_h"])
    np.testing.assert_array_equal(model.backbone.stages[0][4][1].weight.detach().numpy(),
                                  arrays["backbone.simfp_2.4.norm.weight"])
    np.testing.assert_array_equal(model.rpn.head.conv[1][0].weight.detach().numpy(),
                                  arrays["proposal_generator.rpn_head.conv.conv1.weight"])


def test_backbone_of_a_detectron2_checkpoint(tmp_path):
    """format "vitdet": only the ViT of a detector checkpoint, e.g. a ViTDet model-zoo file's
    backbone into the benchmarking paper's FPN detector (or into a bare ViT)."""
    vitdet = tiny_detector("mask_rcnn_vitdet")
    path = str(tmp_path / "model_final.pkl")
    arrays = model_zoo_pickle(path, vitdet)
    report = load_backbone_checkpoint(vitdet.backbone.net, path)
    assert report.format == "vitdet" and report.ok
    assert report.dropped == {"detector neck and heads (not the backbone)": sum(
        not k.startswith("backbone.net.") for k in arrays)}
    cfg = tiny_cfg("mask_rcnn_vitdet")
    net = cfg.model.backbone.net
    bench = LazyConfig.load(os.path.join(REPO, "configs", "common", "models", "mask_rcnn_vit.py"))
    bench.model.num_classes = 3
    bench.model.backbone.bottom_up.net = net
    bench.model.backbone.bottom_up.net.out_block_indexes = [1, 3]
    bench.model.backbone.bottom_up.in_features = ["block1", "block1", "block3", "block3"]
    model = instantiate(bench.model)
    with pytest.raises(CheckpointError, match="backbone.simfp_2.0.weight"):
        load_init_checkpoint(model, path)  # as a whole detector it does not fit this one
    report = load_init_checkpoint(model, path, format="vitdet")
    assert report.missing_unexpected == [] and report.unused == []
    np.testing.assert_array_equal(model.backbone.bottom_up.net.blocks[3].mlp.fc1.weight.detach().numpy(),
                                  arrays["backbone.net.blocks.3.mlp.fc1.weight"])


class _Payload:
    """Unpickling this would run a shell command (it must never be)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("bad", ["class_instance", "reduce_os_system", "object_array"])
def test_pkl_with_anything_but_arrays_is_refused(bad, tmp_path):
    path = str(tmp_path / f"{bad}.pkl")
    marker = tmp_path / "executed"
    model = {"backbone.net.pos_embed": np.zeros((1, 5, 4), np.float32)}
    if bad == "class_instance":
        model["extra"] = fractions.Fraction(1, 3)
    elif bad == "reduce_os_system":
        model["extra"] = _Payload(str(marker))
    else:
        model["extra"] = np.array([1, "a"], dtype=object)
    with open(path, "wb") as f:
        pickle.dump({"model": model, "__author__": "someone"}, f)
    expected = {"class_instance": "refusing to unpickle 'fractions.Fraction'",
                "reduce_os_system": r"refusing to unpickle '(posix|nt|os)\.system'",
                "object_array": "refusing to unpickle|dtype object"}[bad]
    with pytest.raises(CheckpointError, match=f"{bad}.pkl.*({expected})"):
        load_init_checkpoint(tiny_detector("mask_rcnn_vitdet"), path)
    assert not marker.exists()


def test_checkpoint_without_the_neck_stops_init_listing_the_missing_names(tmp_path, caplog):
    model = tiny_detector("mask_rcnn_vitdet")
    path = str(tmp_path / "no_neck.pkl")
    model_zoo_pickle(path, model, drop=("backbone.simfp_",))
    before = model.backbone.stages[0][0].weight.clone()
    with pytest.raises(CheckpointError) as err:
        Checkpointer(model, str(tmp_path)).load(path, full=False)
    message = str(err.value)
    assert "no_neck.pkl" in message and "train.init_strict=False" in message
    assert "backbone.simfp_2.0.weight" in message and "backbone.simfp_5.2.norm.bias" in message  # Detectron2's names
    assert "backbone.stages.0.0.weight" in message  # ours, in the report
    # With the explicit opt-out the same report is logged and the neck keeps its initial values.
    report = load_init_checkpoint(model, path, strict=False)
    assert len(report.missing_unexpected) == sum(1 for k in model.state_dict() if k.startswith("backbone.stages"))
    assert torch.equal(model.backbone.stages[0][0].weight, before)


def test_detector_checkpoint_of_another_width_fails(tmp_path):
    """Our own checkpoint from a 96-d ViT into a 64-d one: every backbone tensor mismatches."""
    cfg = tiny_cfg("mask_rcnn_vitdet")
    cfg.model.backbone.net.embed_dim = 96
    wide = instantiate(cfg.model)
    path = str(tmp_path / "model_final.pth")
    torch.save({"model": wide.state_dict(), "iteration": 10}, path)
    model = tiny_detector("mask_rcnn_vitdet")
    with pytest.raises(CheckpointError, match=r"model_final.pth: \d+ tensors of the model are missing.*"
                                              r"backbone\.net\.patch_embed\.proj\.weight"):
        Checkpointer(model, str(tmp_path)).load(path, full=False)
    report = load_init_checkpoint(model, path, strict=False)
    assert report.format == "detector"
    assert ("backbone.net.patch_embed.proj.weight",
            "shape (96, 3, 16, 16) does not fit the model's (64, 3, 16, 16)") in report.unused


def test_detector_checkpoint_from_another_input_size_resizes_like_detectron2():
    """A 128-px ViTDet checkpoint into a 256-px model: the global blocks' decomposed tables are
    resized at load exactly as Detectron2's get_rel_pos resizes them at run time."""
    small = tiny_detector("mask_rcnn_vitdet")
    state = detectron2_state("mask_rcnn_vitdet", small)
    load_init_checkpoint(small, {"model": state, "__author__": "test"})
    cfg = tiny_cfg("mask_rcnn_vitdet")
    cfg.model.backbone.net.img_size = cfg.model.backbone.square_pad = 256
    large = instantiate(cfg.model).eval()
    report = load_init_checkpoint(large, {"model": state, "__author__": "test"})
    assert sorted(report.resized) == [(f"backbone.net.blocks.{i}.attn.rel_pos_{a}", (15, 16), (31, 16))
                                      for i in (1, 3) for a in "hw"]
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        close(large.backbone.net(x)["last_feat"], small.backbone.net(x)["last_feat"])


def test_backbone_file_missing_a_tensor_stops_init(tmp_path):
    model = tiny_detector("mask_rcnn_vitdet")
    vit = {k[len("backbone.net."):]: v for k, v in model.state_dict().items() if k.startswith("backbone.net.")}
    vit = {k: v for k, v in vit.items() if "rel_pos" not in k and k != "blocks.1.mlp.fc2.weight"}
    path = str(tmp_path / "mae.pth")
    torch.save({"model": vit}, path)
    with pytest.raises(CheckpointError, match=r"mae.pth: 1 tensors .*backbone\.net\.blocks\.1\.mlp\.fc2\.weight"):
        load_init_checkpoint(model, path)
    report = load_init_checkpoint(model, path, strict=False)
    assert report.format == "mae"
    # Decomposed rel-pos (MAE has none), the neck and the heads start from their initial values.
    assert "backbone.net.blocks.0.attn.rel_pos_h" in report.missing_expected
    assert "roi_heads.box_predictor.cls_score.weight" in report.missing_expected
    assert "roi_heads.box_head.* (" in report.summary()


def test_init_strict_config_key():
    from vitdet_bench.engine import init_load_options

    cfg = LazyConfig.load(DEMO_CONFIG)
    assert init_load_options(cfg) == {"format": "auto", "resize_patch_embed": False, "rel_pos_resize": "cubic",
                                      "strict": True}
    cfg = LazyConfig.apply_overrides(cfg, ["train.init_strict=False"])
    assert init_load_options(cfg)["strict"] is False


def test_instantiate_with_num_classes_none_says_how_to_fill_it():
    cfg = LazyConfig.load(DEMO_CONFIG)
    assert cfg.model.num_classes is None
    with pytest.raises(InstantiationError, match=r"roi_heads\.box_predictor.*num_classes is None.*"
                                                 r"resolve_num_classes\(cfg\).*model\.num_classes=N"):
        instantiate(cfg.model)


def test_convert_tool_both_ways(tmp_path):
    """A demo detector trained here -> Detectron2 model-zoo .pkl -> back: the same weights."""
    cfg = LazyConfig.load(DEMO_CONFIG)
    cfg.model.num_classes = 4
    model = instantiate(cfg.model)
    ours = str(tmp_path / "model_final.pth")
    torch.save({"model": model.state_dict()}, ours)
    d2, back = str(tmp_path / "model_final_d2.pkl"), str(tmp_path / "back.pth")
    tool = [sys.executable, os.path.join(REPO, "tools", "convert_checkpoint.py")]
    proc = subprocess.run(tool + ["--to", "detectron2", "--config-file", DEMO_CONFIG, ours, d2],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    zoo = load_detectron2_pickle(d2)
    assert zoo["__author__"] == "vitdet_bench"
    assert "proposal_generator.rpn_head.objectness_logits.weight" in zoo["model"]
    assert zoo["model"]["roi_heads.box_predictor.cls_score.weight"].shape[0] == 5
    assert set(zoo["model"]) == set(to_detectron2(model))
    proc = subprocess.run(tool + ["--from", "detectron2", "--config-file", DEMO_CONFIG, d2, back],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    restored = safe_torch_load(back)["model"]
    for k, v in model.state_dict().items():
        if "bbox_pred" in k or "mask_fcn_logits" in k:
            v, restored[k] = v[4 if "bbox_pred" in k else 1:], restored[k][4 if "bbox_pred" in k else 1:]
        assert torch.equal(restored[k], v), k
    proc = subprocess.run(tool + ["--from", "detectron2", "--config-file", DEMO_CONFIG, d2, back,
                                  "model.num_classes=7"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode != 0 and "model.num_classes=7, but the checkpoint was trained for 4 classes" in proc.stderr


def test_detectron2_names_cover_single_scale_and_bn_heads():
    """The benchmarking paper's single-scale ablation (one FPN level, a 15-anchor RPN) and BN heads
    are named as its Detectron2 configs name them."""
    cfg = LazyConfig.load(os.path.join(REPO, "configs", "common", "models", "mask_rcnn_vit_single_scale.py"))
    cfg.model.num_classes = 2
    cfg.model.backbone.bottom_up.net.depth = 2
    cfg.model.backbone.bottom_up.net.window_block_indexes = [0]
    names, layouts, prefix = detectron2_names(instantiate(cfg.model))
    assert prefix == "backbone.bottom_up.net."
    assert names["backbone.fpn.inner_blocks.0.1.running_var"] == "backbone.fpn_lateral4.norm.running_var"
    assert names["backbone.fpn.layer_blocks.0.0.weight"] == "backbone.fpn_output4.weight"
    assert names["rpn.head.cls_logits.weight"] == "proposal_generator.rpn_head.objectness_logits.weight"
    assert names["roi_heads.box_head.5.weight"] == "roi_heads.box_head.fc1.weight"
    assert names["roi_heads.box_head.3.1.num_batches_tracked"] == "roi_heads.box_head.conv4.norm.num_batches_tracked"
    assert names["roi_heads.mask_head.3.0.weight"] == "roi_heads.mask_head.mask_fcn4.weight"
    assert names["roi_heads.mask_predictor.conv5_mask.weight"] == "roi_heads.mask_head.deconv.weight"
    assert layouts == {f"roi_heads.{module}.{leaf}": kind
                       for module, kind in (("box_predictor.cls_score", "scores"), ("box_predictor.bbox_pred", "boxes"),
                                            ("mask_predictor.mask_fcn_logits", "masks"))
                       for leaf in ("weight", "bias")}
