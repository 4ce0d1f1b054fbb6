"""The CUDA paths, checked on a GPU: AMP training steps in fp16 (GradScaler) and bf16, SDPA's fused
kernels serving window and global attention, inference mode against no_grad, the GPU mask paste
against the CPU paste, SyncBN in a one-process NCCL group, and the compiled backbone against eager.

Each check is written once over a device. Its CUDA case carries the ``cuda`` marker and skips, with
the reason, where there is no CUDA device; ``tools/device_check.py`` runs this file on the GPU
machine. Its CPU case (unmarked) runs the same logic in the ordinary suite wherever the CPU can:
bf16 AMP, the CPU's fused attention at inference, Gloo with BatchNorm (torch's SyncBatchNorm
kernels exist only on CUDA) and the ``aot_eager`` compiler backend (inductor's C++ build takes
minutes on two cores; tests/engine/test_speed.py covers it).
"""

from __future__ import annotations

import contextlib
import itertools
import math

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from vitdet_bench.benchmark.throughput import sdpa_kernels
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.engine import build_model, resolve_num_classes
from vitdet_bench.engine.launch import find_free_port
from vitdet_bench.engine.speed import compile_module, inference_context
from vitdet_bench.engine.train_loop import SimpleTrainer
from vitdet_bench.modeling import ViT
from vitdet_bench.modeling.detector.mask_paste import paste_masks
from vitdet_bench.utils.events import EventStorage

from helpers import DEMO_CONFIG

NO_CUDA = f"needs a CUDA device: none here (torch {torch.__version__}, built for CUDA {torch.version.cuda})"
ON_CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)]
CPU = pytest.param("cpu", id="cpu")
CUDA = pytest.param("cuda", id="cuda", marks=ON_CUDA)
FUSED = {"flash", "memory-efficient"}  # SDPA's fused CUDA kernels (the profiler's names, throughput.SDPA_KERNELS)


def _demo_model(device: str, seed: int = 0, **vit):
    """The demo detector (configs/demo/mask_rcnn_vit_tiny.py) on ``device``, randomly initialised."""
    cfg = LazyConfig.load(DEMO_CONFIG)
    cfg.train.device = device
    cfg.dataloader.train.total_batch_size = 2
    cfg.dataloader.test.dataset.names = "demo_minival"
    for k, v in vit.items():
        setattr(cfg.model.backbone.bottom_up.net, k, v)
    resolve_num_classes(cfg)
    torch.manual_seed(seed)
    return cfg, build_model(cfg, torch.device(device))


# --- AMP training steps ---------------------------------------------------------------------------


def amp_steps(device: str, dtype: torch.dtype, steps: int = 4) -> dict:
    """``steps`` training steps of the demo detector with the trainer's AMP (GradScaler for fp16).

    Returns:
        ``{"qkv_dtype", "losses", "changed", "applied", "scale"}``: the dtype a ViT projection
        computed in, the total losses, the fraction of parameters the steps changed, how many
        steps the GradScaler applied, and its final scale (``None`` without a scaler).
    """
    cfg, model = _demo_model(device)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    batches = list(itertools.islice(iter(instantiate(cfg.dataloader.train)), 2))
    trainer = SimpleTrainer(model, itertools.cycle(batches), optimizer, amp_dtype=dtype, device=torch.device(device))
    seen = []
    qkv = model.backbone.bottom_up.net.blocks[0].attn.qkv
    handle = qkv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses, applied = [], 0
    with EventStorage(0) as trainer.storage:
        for trainer.iter in range(steps):
            scale = trainer.grad_scaler.get_scale() if trainer.grad_scaler.is_enabled() else None
            trainer.run_step()
            losses.append(trainer.storage.history("total_loss").latest())
            # The scaler lowers its scale exactly when it skipped the step (inf / NaN gradients).
            applied += scale is None or trainer.grad_scaler.get_scale() >= scale
            trainer.storage.step()
    handle.remove()
    changed = sum(not torch.equal(p.detach(), before[n]) for n, p in model.named_parameters())
    return {"qkv_dtype": seen[0], "losses": losses, "changed": changed / len(before), "applied": applied,
            "scale": trainer.grad_scaler.get_scale() if trainer.grad_scaler.is_enabled() else None}


@pytest.mark.parametrize("device,dtype", [
    pytest.param("cpu", torch.bfloat16, id="cpu-bfloat16"),
    pytest.param("cuda", torch.bfloat16, id="cuda-bfloat16", marks=ON_CUDA),
    pytest.param("cuda", torch.float16, id="cuda-float16", marks=ON_CUDA),
])
def test_amp_training_step(device, dtype, demo_root):
    """The step runs under autocast in ``dtype``, its losses are finite and it updates the weights;
    fp16 goes through a GradScaler that applied at least one step, bf16 needs none."""
    out = amp_steps(device, dtype)
    assert out["qkv_dtype"] is dtype
    assert all(math.isfinite(v) for v in out["losses"]), out["losses"]
    assert out["applied"] >= 1 and out["changed"] > 0.5, out
    if dtype is torch.float16:
        assert out["scale"] is not None and 0 < out["scale"] < math.inf, out
    else:
        assert out["scale"] is None


# --- SDPA kernels ---------------------------------------------------------------------------------


def attention_kernels(device: str, training: bool, backends: list[SDPBackend], dtype: torch.dtype | None,
                      **vit) -> set[tuple[str, str, str]]:
    """``{(attention, pass, kernel)}`` of one demo-backbone pass with SDPA restricted to ``backends``
    (a call no allowed kernel can serve raises), window and global attention told apart by their
    token counts (208 px: 13 x 13 tokens, 8 x 8 windows padded)."""
    cfg, model = _demo_model(device, **vit)
    model.train(training)
    x = torch.randn(1, 3, 208, 208, device=device)
    labels = {64: "window", 169: "global"}

    def step():
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            maps = model.backbone(x)
        sum(v.float().sum() for v in maps.values()).backward()

    with sdpa_kernel(backends):
        if training:
            rows = sdpa_kernels(step, labels)
        else:
            with inference_context(torch.device(device), dtype):
                rows = sdpa_kernels(lambda: model.backbone(x), labels)
    return {(r["attention"], r["pass"], r["kernel"]) for r in rows}


VIT_VARIANTS = {"shared-tables": {}, "decomposed-masked": {"use_rel_pos": True, "mask_window_padding": True}}


@pytest.mark.parametrize("vit", list(VIT_VARIANTS))
def test_cpu_fused_kernel_serves_inference_when_restricted_to_it(vit):
    """The helper on the CPU: restricted to flash attention, inference runs the CPU flash kernel
    for window and global attention (the training fallback is tests/engine/test_speed.py's)."""
    got = attention_kernels("cpu", False, [SDPBackend.FLASH_ATTENTION], None, **VIT_VARIANTS[vit])
    assert got == {("window", "forward", "flash (CPU)"), ("global", "forward", "flash (CPU)")}


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("vit", list(VIT_VARIANTS))
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_cuda_fused_kernels_serve_window_and_global_attention(vit, training):
    """In bf16 on CUDA, with SDPA allowed only flash and memory-efficient attention (never math),
    every window and global attention call runs (biases, padding masks and their gradients
    included), and the profiler names one of those kernels for each, backward included."""
    got = attention_kernels("cuda", training, [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION],
                            torch.bfloat16, **VIT_VARIANTS[vit])
    passes = ["forward", "backward"] if training else ["forward"]
    assert {(a, p) for a, p, _ in got} == {(a, p) for a in ("window", "global") for p in passes}, got
    assert {k for _, _, k in got} <= FUSED, got


# --- inference mode -------------------------------------------------------------------------------


def assert_same_detections(a: list[dict], b: list[dict]) -> None:
    """Two detectors' outputs are identical: boxes, scores, labels and pasted masks."""
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert len(x["scores"]) > 0, f"image {i}: no detections to compare"
        for key in ("boxes", "scores", "labels", "masks"):
            assert torch.equal(x[key], y[key]), f"image {i}: {key} differ"


@contextlib.contextmanager
def _deterministic_cudnn():
    before = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("device", [CPU, CUDA])
def test_inference_mode_equals_no_grad(device, dtype, demo_root):
    """Evaluation's ``inference_context`` (inference mode + autocast) gives the detections that the
    same autocast under ``no_grad`` gives, bit for bit (cuDNN's algorithm choice pinned)."""
    cfg, model = _demo_model(device)
    model.eval()
    batch = next(iter(instantiate(cfg.dataloader.test)))[:2]
    dev = torch.device(device)
    with _deterministic_cudnn():
        with inference_context(dev, dtype):
            fast = model(batch)
        with torch.no_grad(), torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            plain = model(batch)
    assert fast[0]["masks"].device.type == dev.type
    assert_same_detections(fast, plain)


# --- mask paste -----------------------------------------------------------------------------------


def _random_masks_and_boxes(n: int, h: int, w: int, m: int = 28, seed: int = 0):
    """Mask R-CNN-like inputs: sigmoid probabilities (M x M) and fractional boxes, some leaving the
    image, some smaller than a mask cell."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.sigmoid(3 * torch.randn(n, 1, m, m, generator=g))
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w, h]) * 1.2 - torch.tensor([w, h]) * 0.1
    size = torch.rand(n, 2, generator=g) ** 2 * torch.tensor([w, h]) * 0.6 + 0.3
    return masks, torch.cat([xy, xy + size], dim=1)


def unexplained_paste_differences(a: torch.Tensor, b: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor,
                                  threshold: float, tol: float = 1e-5) -> int:
    """Pixels where two pastes disagree although their float64 probability is farther than ``tol``
    from ``threshold`` (where float32 rounding cannot decide it). Both pastes are (N, H, W) bool."""
    a, b = a.cpu(), b.cpu()
    differ = a != b
    if not differ.any():
        return 0
    n, h, w = a.shape
    rows = differ.flatten(1).any(dim=1).nonzero()[:, 0]
    m, bx = masks[rows].double().cpu(), boxes[rows].double().cpu()
    xs = torch.arange(w, dtype=torch.float64) + 0.5
    ys = torch.arange(h, dtype=torch.float64) + 0.5
    gx = (xs[None] - bx[:, 0:1]) / (bx[:, 2:3] - bx[:, 0:1]).clamp(min=1e-6) * 2 - 1
    gy = (ys[None] - bx[:, 1:2]) / (bx[:, 3:4] - bx[:, 1:2]).clamp(min=1e-6) * 2 - 1
    grid = torch.stack((gx[:, None, :].expand(-1, h, -1), gy[:, :, None].expand(-1, -1, w)), dim=3)
    probs = F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    return int((differ[rows] & ((probs - threshold).abs() > tol)).sum())


@pytest.mark.parametrize("device", [CPU, CUDA])
def test_mask_paste_on_device_equals_the_cpu_paste(device):
    """``paste_masks`` on ``device`` (on CUDA: all masks over the whole image in chunks) gives the
    CPU paste's pixels (per box extent), except where float32 rounding sits on the threshold.
    On the CPU the whole-image path stands in for the device's."""
    from vitdet_bench.modeling.detector.mask_paste import _paste_whole_image

    h, w = 600, 800
    masks, boxes = _random_masks_and_boxes(100, h, w)
    for threshold in (0.5, 0.2):
        ref = paste_masks(masks, boxes, (h, w), threshold)
        if device == "cpu":
            out = _paste_whole_image(masks, boxes, torch.zeros_like(ref), threshold)
        else:
            out = paste_masks(masks.to(device), boxes.to(device), (h, w), threshold)
            assert out.device.type == "cuda"
        assert out.shape == ref.shape and out.dtype == torch.bool
        assert ref.flatten(1).any(dim=1).float().mean() > 0.8  # most masks land in the image
        assert unexplained_paste_differences(out, ref, masks, boxes, threshold) == 0
        assert int((out.cpu() != ref).sum()) <= 1e-6 * ref.numel(), threshold


def test_paste_difference_helper_counts_real_differences():
    masks, boxes = _random_masks_and_boxes(4, 40, 50, seed=1)
    ref = paste_masks(masks, boxes, (40, 50), 0.5)
    flipped = ref.clone()
    flipped[0] = ~flipped[0]
    assert unexplained_paste_differences(ref, ref.clone(), masks, boxes, 0.5) == 0
    assert unexplained_paste_differences(flipped, ref, masks, boxes, 0.5) == 40 * 50


# --- SyncBN in a one-process group ----------------------------------------------------------------


@contextlib.contextmanager
def one_process_group(backend: str):
    """A process group of this process alone (rank 0 of 1) on a free local port."""
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{find_free_port()}", rank=0, world_size=1)
    try:
        yield dist.group.WORLD
    finally:
        dist.destroy_process_group()


def _conv_norm_net(norm: type[nn.Module]) -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), norm(8), nn.ReLU(), nn.Conv2d(8, 4, 1), norm(4))
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return net


def ddp_step_against_batchnorm(device: str, backend: str, norm: type[nn.Module]) -> None:
    """One DDP training step of a conv net with ``norm`` in a one-process ``backend`` group equals
    the same step of the plain BatchNorm net: outputs, gradients and running statistics."""
    dev = torch.device(device)
    ref, net = _conv_norm_net(nn.BatchNorm2d).to(dev), _conv_norm_net(norm).to(dev)
    x = torch.randn(4, 3, 12, 12, device=dev)
    with one_process_group(backend):
        ddp = nn.parallel.DistributedDataParallel(net, device_ids=[dev.index or 0] if dev.type == "cuda" else None)
        out, expected = ddp(x), ref(x)
        out.square().mean().backward()
        expected.square().mean().backward()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
    for name, buf in net.named_buffers():
        torch.testing.assert_close(buf, dict(ref.named_buffers())[name], msg=lambda m: f"{name}: {m}")


def test_ddp_batchnorm_step_in_a_one_process_gloo_group():
    """The CPU stand-in: Gloo and BatchNorm (torch's SyncBatchNorm runs only on CUDA)."""
    ddp_step_against_batchnorm("cpu", "gloo", nn.BatchNorm2d)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
@pytest.mark.skipif(not dist.is_nccl_available(), reason="needs NCCL: this torch was built without it")
def test_syncbn_in_a_one_process_nccl_group():
    """SyncBatchNorm under DDP in a one-process NCCL group equals BatchNorm. Alone, the module takes
    its local path (world size 1), so its synchronising function is also called directly: its
    statistics all-gather over NCCL and the CUDA kernels that combine them give F.batch_norm's
    output, gradients and running statistics."""
    from torch.nn.modules import _functions  # SyncBatchNorm's autograd function (what the module calls)

    ddp_step_against_batchnorm("cuda", "nccl", nn.SyncBatchNorm)
    torch.manual_seed(0)
    x = torch.randn(4, 8, 10, 10, device="cuda", requires_grad=True)
    weight = torch.rand(8, device="cuda", requires_grad=True)
    bias = torch.randn(8, device="cuda", requires_grad=True)
    stats = [torch.zeros(8, device="cuda"), torch.ones(8, device="cuda")]
    ref_stats = [s.clone() for s in stats]
    with one_process_group("nccl") as group:
        out = _functions.SyncBatchNorm.apply(x, weight, bias, *stats, 1e-5, 0.1, group, 1)
        grads = torch.autograd.grad(out.square().sum(), (x, weight, bias))
    expected = F.batch_norm(x, *ref_stats, weight, bias, True, 0.1, 1e-5)
    ref_grads = torch.autograd.grad(expected.square().sum(), (x, weight, bias))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)
    for s, r in zip(stats, ref_stats):
        torch.testing.assert_close(s, r)


# --- torch.compile --------------------------------------------------------------------------------


def compiled_against_eager(device: str, backend: str | None) -> dict[str, float]:
    """A 2-block ViT (window + global, shared relative-position tables) compiled in place with the
    project's ``compile_module``, against its eager self: the largest relative error of the fp32
    training forward and of its gradients, and of a bf16 inference forward."""
    torch.manual_seed(0)
    vit = ViT(img_size=128, patch_size=16, embed_dim=64, depth=2, num_heads=2, window_size=4, window_block_indexes=[0],
              pretrain_img_size=128, rel_pos_bias="shared").to(device)
    holder = nn.Module()
    holder.backbone = vit
    x = torch.randn(2, 3, 128, 128, device=device)
    dev = torch.device(device)

    def train_pass():
        vit.zero_grad(set_to_none=True)
        out = vit(x)["last_feat"]
        out.square().mean().backward()
        return out.detach(), [p.grad.clone() for p in vit.parameters()]

    def infer_pass():
        vit.eval()
        with inference_context(dev, torch.bfloat16):
            out = vit(x[:1])["last_feat"].float()
        vit.train()
        return out

    eager_out, eager_grads = train_pass()
    eager_infer = infer_pass()
    options = {"enabled": True, "module": "backbone", "dynamic": False}
    compile_module(holder, {**options, "backend": backend} if backend else options)
    out, grads = train_pass()
    infer = infer_pass()

    def rel(a, b):
        return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12))

    return {"forward": rel(out, eager_out), "grads": max(rel(g, e) for g, e in zip(grads, eager_grads)),
            "bf16_inference": rel(infer, eager_infer)}


@pytest.mark.parametrize("device,backend", [
    pytest.param("cpu", "aot_eager", id="cpu-aot_eager"),
    pytest.param("cuda", None, id="cuda-inductor", marks=ON_CUDA),
])
def test_compiled_backbone_equals_eager(device, backend):
    """fp32 forward and gradients within 1e-4 (relative L2; inductor fuses and reorders float
    sums), the bf16 inference forward within 2e-2 (bf16's 8-bit mantissa, two blocks)."""
    err = compiled_against_eager(device, backend)
    assert err["forward"] < 1e-4 and err["grads"] < 1e-4 and err["bf16_inference"] < 2e-2, err
