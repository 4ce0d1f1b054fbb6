"""The fast inference path against the plain one: bf16 autocast against fp32 (stated tolerances),
inference mode against no_grad (identical), SDPA's fused kernels (which torch's own profiler
reports) against the math kernel, the compiled backbone against eager, and the timing tool."""

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from vitdet_bench.benchmark.throughput import benchmark_detector, format_speed_report, sdpa_kernels
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.engine import Predictor, build_model, resolve_num_classes
from vitdet_bench.engine.speed import compile_module, inference_amp_dtype, inference_context
from vitdet_bench.modeling import ViT
from vitdet_bench.modeling.backbone.utils import SDPA_BIAS_ALIGNMENT, sdpa_attn_bias

from helpers import DEMO_CONFIG, REPO

BENCH_CONFIG = os.path.join(REPO, "configs", "demo", "bench_vit_tiny.py")
CPU = torch.device("cpu")


def _demo_model(config=DEMO_CONFIG, seed=0, **vit):
    cfg = LazyConfig.load(config)
    cfg.train.device = "cpu"
    cfg.dataloader.test.dataset.names = "demo_minival"
    for k, v in vit.items():
        setattr(cfg.model.backbone.bottom_up.net, k, v)
    resolve_num_classes(cfg)
    torch.manual_seed(seed)
    return cfg, build_model(cfg, CPU).eval()


def test_inference_dtype_follows_train_amp():
    cfg = LazyConfig.load(DEMO_CONFIG)
    cuda = torch.device("cuda", 0)
    cfg.train.amp.enabled = False  # the demo detector trains in bf16; start from AMP off
    assert inference_amp_dtype(cfg, CPU) is None and inference_amp_dtype(cfg, cuda) is None  # AMP off
    cfg.train.amp.enabled = True
    cfg.train.amp.dtype = "bfloat16"
    assert inference_amp_dtype(cfg, cuda) is torch.bfloat16  # as training, on CUDA
    assert inference_amp_dtype(cfg, CPU) is None  # the CPU stays fp32 unless asked
    cfg.train.amp.inference = True
    assert inference_amp_dtype(cfg, CPU) is torch.bfloat16
    cfg.train.amp.inference = False
    assert inference_amp_dtype(cfg, cuda) is None
    cfg.train.amp.inference = True
    cfg.train.amp.dtype = "float16"
    with pytest.raises(ValueError, match="train.amp.inference=True with train.amp.dtype='float16' needs CUDA"):
        inference_amp_dtype(cfg, CPU)
    cfg.train.amp.inference = "yes"
    with pytest.raises(ValueError, match="train.amp.inference must be true, false or null"):
        inference_amp_dtype(cfg, cuda)
    del cfg.train.amp["inference"]  # a config.yaml written before the key existed
    assert inference_amp_dtype(cfg, cuda) is torch.float16


def test_bf16_inference_is_close_to_fp32(demo_root):
    """Tolerances follow bf16's 8-bit mantissa (relative step 2**-8 = 0.4%): FPN maps within 3% of
    their fp32 values (relative L2, after 4 blocks and the neck); of every fp32 detection, at least
    85% have a bf16 detection of the same class at IoU >= 0.9 whose score is within 0.05 (random
    heads score many boxes nearly alike, so a few swap places around the top-100 cut)."""
    cfg, model = _demo_model(BENCH_CONFIG)
    batch = next(iter(instantiate(cfg.dataloader.test)))[:4]
    images = model.preprocess(batch).tensors
    with inference_context(CPU):
        ref_maps, ref = model.backbone(images), model(batch)
    with inference_context(CPU, torch.bfloat16):
        maps, out = model.backbone(images), model(batch)
    for name, m in ref_maps.items():
        assert maps[name].dtype is torch.bfloat16
        assert float((maps[name].float() - m).norm() / m.norm()) < 3e-2, name
    matched = total = 0
    for a, b in zip(ref, out):
        assert b["boxes"].dtype is torch.float32 and b["scores"].dtype is torch.float32  # decoded in fp32
        assert b["masks"].shape[1:] == a["masks"].shape[1:]
        iou = box_iou(a["boxes"], b["boxes"])
        same = (a["labels"][:, None] == b["labels"][None]) & ((a["scores"][:, None] - b["scores"][None]).abs() <= 0.05)
        matched += int(((iou >= 0.9) & same).any(dim=1).sum())
        total += len(a["boxes"])
    assert total > 0 and matched / total >= 0.85, (matched, total)


def test_rpn_anchors_and_proposals_stay_fp32_under_bf16_autocast():
    """torchvision builds anchors in the feature maps' dtype: under bf16 a 1024-px image's anchor
    coordinates would be rounded to 4-8 px. Ours equal the fp32 anchors exactly."""
    cfg = LazyConfig.load(os.path.join(REPO, "configs", "common", "models", "mask_rcnn_vit.py"))
    cfg.model.rpn.head.in_channels = 8
    rpn = instantiate(cfg.model.rpn).eval()
    from torchvision.models.detection.image_list import ImageList

    torch.manual_seed(0)
    feats = {f"p{k}": torch.randn(1, 8, 1024 // 2**k, 1024 // 2**k) for k in range(2, 7)}
    images = ImageList(torch.zeros(1, 3, 1024, 1024), [(1024, 1024)])
    seen = []
    handle = rpn.anchor_generator.register_forward_hook(lambda m, i, o: seen.append(o[0]))
    with torch.inference_mode():
        props32, _ = rpn(images, feats)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            props16, _ = rpn(images, feats)
        props32_after, _ = rpn(images, feats)  # cached cell anchors were not rounded by the bf16 pass
    handle.remove()
    assert seen[1].dtype is torch.float32 and torch.equal(seen[0], seen[1]) and torch.equal(seen[0], seen[2])
    assert props16[0].dtype is torch.float32 and torch.equal(props32[0], props32_after[0])
    # The head's convs run in bf16; the top proposals still agree to a fraction of a pixel on average.
    top = min(len(props32[0]), len(props16[0]), 50)
    assert float(box_iou(props32[0][:top], props16[0]).max(dim=1).values.mean()) > 0.9


def test_inference_mode_equals_no_grad_and_training_continues(demo_root):
    cfg, model = _demo_model(BENCH_CONFIG)
    batch = next(iter(instantiate(cfg.dataloader.test)))[:2]
    with inference_context(CPU):
        fast = model(batch)
    with torch.no_grad():
        plain = model(batch)
    for a, b in zip(fast, plain):
        assert len(a["scores"]) > 0
        for key in ("boxes", "scores", "labels", "masks"):
            assert torch.equal(a[key], b[key]), key
    # Nothing cached inside inference mode (e.g. the relative-position index) breaks training after it.
    model.train()
    train_batch = next(iter(instantiate(cfg.dataloader.train)))
    sum(model(train_batch).values()).backward()
    assert model.backbone.bottom_up.net.rel_pos_bias_window.relative_position_bias_table.grad is not None


@pytest.mark.parametrize("vit", [dict(), dict(use_rel_pos=True, mask_window_padding=True)],
                         ids=["shared-tables", "decomposed-masked"])
def test_fused_attention_kernel_serves_window_and_global_attention(vit):
    """At inference on the CPU, every window and global attention call runs SDPA's fused kernel,
    biases and padding masks included (a 3-D bias made PyTorch fall back to the math kernel);
    in training the math kernel takes over when the bias needs a gradient (a PyTorch limit)."""
    cfg, model = _demo_model(BENCH_CONFIG, **vit)
    x = torch.randn(1, 3, 208, 208)  # 13x13 tokens: the 8x8 windows are padded
    labels = {64: "window", 169: "global"}
    with torch.inference_mode():
        rows = sdpa_kernels(lambda: model.backbone(x), labels)
    assert {(r["attention"], r["kernel"]) for r in rows} == {("window", "flash (CPU)"), ("global", "flash (CPU)")}
    model.train()
    rows = sdpa_kernels(lambda: sum(v.sum() for v in model.backbone(x).values()).backward(), labels)
    assert {(r["attention"], r["kernel"]) for r in rows} == {("window", "math"), ("global", "math")}


def test_sdpa_bias_layout_keeps_values_and_aligns_rows():
    torch.manual_seed(0)
    q, k, v = (torch.randn(6, 3, 49, 16) for _ in range(3))
    biases = (torch.randn(49, 49, 3).permute(2, 0, 1), torch.randn(6, 1, 1, 49), torch.randn(2, 3, 48, 48)[:1, :, :1])
    for bias in biases:
        out = sdpa_attn_bias(bias, torch.float32)
        assert out.dim() == 4 and torch.equal(out, bias.expand_as(out) if bias.dim() == 4 else bias[None])
        assert out.stride(-1) == 1 and all(s % SDPA_BIAS_ALIGNMENT == 0 for s in out.stride()[:-1])
    bias = torch.randn(49, 49, 3).permute(2, 0, 1)
    explicit = ((q @ k.transpose(-2, -1)) * 16**-0.5 + bias).softmax(-1) @ v  # the attention formula
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_attn_bias(bias, q.dtype)),
                               explicit, atol=1e-5, rtol=1e-5)
    aligned = sdpa_attn_bias(bias, torch.float32)
    assert sdpa_attn_bias(aligned, torch.float32) is aligned  # shared biases are converted once
    with pytest.raises(ValueError, match=r"attention bias must be \(heads, L, S\)"):
        sdpa_attn_bias(torch.zeros(49, 49), torch.float32)


def _have_compiler() -> bool:
    return shutil.which(os.environ.get("CXX", "g++")) is not None or shutil.which("cc") is not None


@pytest.mark.skipif(not _have_compiler(), reason="torch.compile's inductor backend needs a C++ compiler on the CPU")
def test_compiled_backbone_equals_eager_and_keeps_parameter_names():
    torch.manual_seed(0)
    vit = ViT(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2, window_size=2, window_block_indexes=[0],
              pretrain_img_size=64, rel_pos_bias="shared").eval()
    holder = torch.nn.Module()
    holder.backbone = vit
    keys = list(holder.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        eager = vit(x)["last_feat"]
        compile_module(holder, {"enabled": True, "module": "backbone", "dynamic": False})
        compiled = vit(x)["last_feat"]
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    assert list(holder.state_dict()) == keys  # checkpoints load and save as before
    with pytest.raises(ValueError, match="train.compile.module='neck': Module has no attribute 'neck'"):
        compile_module(holder, {"enabled": True, "module": "neck"})
    with pytest.raises(ValueError, match=r"train.compile: unknown keys \['modes'\]"):
        compile_module(holder, {"enabled": True, "modes": "max-autotune"})


def test_predictor_runs_in_the_configured_inference_dtype(demo_root, tmp_path):
    cfg, model = _demo_model()
    cfg.train.amp.update(enabled=True, dtype="bfloat16", inference=True)
    predictor = Predictor(cfg, None, device="cpu")
    assert predictor.amp_dtype is torch.bfloat16
    batch = next(iter(instantiate(cfg.dataloader.test)))[:1]
    det = predictor(batch[0]["file_name"])
    assert det["boxes"].dtype == np.float32 and det["scores"].dtype == np.float32 and len(det["scores"]) > 0


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_detector_reports_both_phases_on_the_cpu(demo_root, tmp_path, capsys):
    tool = _load_tool("benchmark_detector")
    out = tmp_path / "speed.json"
    assert tool.main(["--config-file", BENCH_CONFIG, "--device", "cpu", "--batch", "2", "--warmup", "1", "--iters", "2",
                      "--images", "2", "--profile", "1", "--json", str(out),
                      "dataloader.test.dataset.names=demo_minival",
                      "train.amp.enabled=True", "train.amp.dtype=bfloat16"]) == 0
    report = json.load(open(out))
    train, infer = report["train"], report["inference"]
    assert (train["batch_size"], train["amp"], train["timed_calls"]) == (2, "bfloat16", 2)
    assert (infer["batch_size"], infer["amp"], infer["timed_calls"]) == (1, "float32", 2)  # CPU inference stays fp32
    assert train["s_per_image"] == pytest.approx(train["s_per_iter"] / 2)
    assert train["images_per_s"] == pytest.approx(2 / train["s_per_iter"])
    assert report["environment"]["torch"] == torch.__version__ and report["image_size"] == 256
    assert {r["attention"] for r in infer["attention_kernels"]} == {"window 8x8", "global"}
    assert train["top_ops"] and infer["top_ops"]
    text = capsys.readouterr().out
    assert "| train " in text and "| inference " in text and "SDPA kernels" in text
    assert "torch " + torch.__version__ in text
    assert "256 px" in text and "torch.compile: off" in text
    with pytest.raises(ValueError, match="must be >= 1"):
        benchmark_detector(LazyConfig.load(BENCH_CONFIG), CPU, warmup=0)
    assert format_speed_report(report).count("\n") > 5
