"""EVA-01 feature-reconstruction MIM against the official code (baaivision/EVA ``EVA-01/eva``):
the student's input normalisation (``datasets.DataAugmentationForEVA``), the +-1 std truncated
init (``modeling_pretrain.trunc_normal_`` and ``_init_weights``), the weight-decay groups
(``optim_factory.get_parameter_groups`` with the model's ``no_weight_decay()``) and every
iteration's lr (``utils.cosine_scheduler``), each written out here from the official code and
compared with the EVA config's model, optimizer and schedule."""

import math
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image
from torchvision import transforms as T

from vitdet_bench.checkpoint import save_backbone_export
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.data.constants import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD
from vitdet_bench.pretrain import MAE, build_pretrain_encoder
from vitdet_bench.solver import LRMultiplier, WarmupParamScheduler, cosine_schedule

from helpers import REPO

EVA_CONFIG = "projects/EVA/configs/eva_vit_b_clip_l14_800ep.py"
IMG = 64

# datasets.py, DataAugmentationForEVA: the student's patch_transform without
# --imagenet_default_mean_and_std (EVA's README command does not pass it).
EVA_MEAN = (0.48145466, 0.4578275, 0.40821073)
EVA_STD = (0.26862954, 0.26130258, 0.27577711)


def _teacher_file(tmp_path, width: int = 32) -> str:
    """A small MAE export to stand in for CLIP (the teacher plays no part in what is tested here)."""
    torch.manual_seed(0)
    enc = build_pretrain_encoder("vit_t", img_size=IMG, embed_dim=width, depth=1, num_heads=2, pos_embed="sincos")
    mae = MAE(enc, decoder_dim=16, decoder_depth=1, decoder_num_heads=2)
    path = str(tmp_path / "teacher.pth")
    save_backbone_export(mae.export_state(), path, mae.export_meta())
    return path


def eva_config(tmp_path, **encoder):
    """The EVA config with a small student and a small stand-in teacher; everything else as written."""
    cfg = LazyConfig.load(os.path.join(REPO, EVA_CONFIG))
    cfg.teacher.update(path=_teacher_file(tmp_path), embed_dim=32, depth=1, num_heads=2, checkpoint_patch_size=16,
                       act="gelu", norm_eps=1e-6, projection=False, pixel_mean=None, pixel_std=None)
    cfg.model.encoder.update({**dict(arch="vit_t", img_size=IMG, embed_dim=32, depth=2, num_heads=2), **encoder})
    return cfg


def official_name(ours: str) -> str:
    """Our parameter name -> modeling_pretrain.VisionTransformerForMaskedImageModeling's: the ViT's
    tensors and the encoder's cls token / final norm sit at the official model's top level."""
    for prefix in ("encoder.vit.", "encoder."):
        if ours.startswith(prefix):
            return ours[len(prefix):]
    return ours


# --- 1. the student's input -------------------------------------------------------------------------

def test_student_input_is_normalised_with_clip_statistics_as_evas_datasets(tmp_path):
    model = instantiate(eva_config(tmp_path).model)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (IMG, IMG, 3), dtype=np.uint8))
    official = T.Compose([T.ToTensor(), T.Normalize(mean=EVA_MEAN, std=EVA_STD)])(image)
    raw = torch.from_numpy(np.asarray(image, dtype=np.float32).transpose(2, 0, 1).copy())  # the mapper's 0-255 tensor
    ours = model.normalize(raw[None])[0]
    torch.testing.assert_close(ours, official, atol=1e-5, rtol=1e-5)
    # The teacher's own normalisation is separate (here the stand-in's: ImageNet's, from its export).
    assert model.teacher.pixel_mean.flatten().tolist() == pytest.approx(IMAGENET_PIXEL_MEAN)
    # ImageNet statistics (what the student had before) give another input.
    imagenet = (raw - torch.tensor(IMAGENET_PIXEL_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_PIXEL_STD).view(3, 1, 1)
    assert (imagenet - official).abs().max() > 0.05
    assert model.export_meta()["pixel_mean"] == pytest.approx([255 * m for m in EVA_MEAN], rel=1e-6)


# --- 2. initialisation ------------------------------------------------------------------------------

def _truncated_std(std: float) -> float:
    """std of N(0, std^2) truncated to [-std, std]: std * sqrt(1 - 2 phi(1) / (2 Phi(1) - 1))."""
    phi1 = math.exp(-0.5) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    return std * math.sqrt(1 - 2 * phi1 / (2 * big_phi - 1))


def test_every_tensor_eva_draws_from_its_truncated_normal_is_cut_at_one_std(tmp_path):
    torch.manual_seed(0)
    cfg = eva_config(tmp_path, embed_dim=192, num_heads=3, img_size=224)
    model = instantiate(cfg.model)
    std = cfg.model.init_std
    expected = _truncated_std(std)
    assert std == 0.02 and expected == pytest.approx(0.5396 * 0.02, rel=1e-3)
    vit = model.encoder.vit
    # modeling_pretrain: trunc_normal_(pos_embed, cls_token, mask_token, lm_head.weight) and, in
    # _init_weights, every nn.Linear and nn.Conv2d weight; fix_init_weight then divides each block's
    # attn.proj and mlp.fc2 by sqrt(2 * layer).
    drawn = {"pos_embed": vit.pos_embed, "cls_token": model.encoder.cls_token, "mask_token": model.mask_token,
             "lm_head.weight": model.lm_head.weight, "patch_embed.proj.weight": vit.patch_embed.proj.weight}
    for i, blk in enumerate(vit.blocks):
        drawn[f"blocks.{i}.attn.qkv.weight"] = blk.attn.qkv.weight
        drawn[f"blocks.{i}.mlp.fc1.weight"] = blk.mlp.fc1.weight
    for name, t in drawn.items():
        t = t.detach()
        assert float(t.abs().max()) <= std, name  # timm's own bounds (+-2, absolute) would leave values past 0.02
        tolerance = 0.05 if t.numel() > 20000 else 0.25
        assert float(t.std()) == pytest.approx(expected, rel=tolerance), name
    for layer, blk in enumerate(vit.blocks, start=1):
        for w in (blk.attn.proj.weight.detach(), blk.mlp.fc2.weight.detach()):
            assert float(w.abs().max()) <= std / math.sqrt(2 * layer) + 1e-9
            assert float(w.std()) == pytest.approx(expected / math.sqrt(2 * layer), rel=0.05)
    zeros = [vit.patch_embed.proj.bias, model.lm_head.bias, vit.blocks[0].attn.q_bias, vit.blocks[0].attn.v_bias,
             vit.blocks[0].attn.proj.bias, vit.blocks[1].mlp.fc1.bias, model.encoder.norm.bias]
    assert all(float(t.detach().abs().max()) == 0.0 for t in zeros)
    assert torch.equal(vit.blocks[0].norm1.weight.detach(), torch.ones(192))
    # The teacher is not touched by the student's init.
    assert float(model.teacher.vit.blocks[0].attn.qkv.weight.abs().max()) > std


# --- 3. weight-decay groups ---------------------------------------------------------------------------

def official_no_decay(model: nn.Module) -> set[str]:
    """optim_factory.get_parameter_groups(model, wd, skip_list=model.no_weight_decay()), transcribed:
    ``len(param.shape) == 1 or name.endswith(".bias") or name in skip_list`` (official names), with
    VisionTransformerForMaskedImageModeling.no_weight_decay() = {'pos_embed', 'cls_token'}."""
    skip = {"pos_embed", "cls_token"}
    out = set()
    for name, p in model.named_parameters():
        theirs = official_name(name)
        if p.requires_grad and (len(p.shape) == 1 or theirs.endswith(".bias") or theirs in skip):
            out.add(name)
    return out


def test_weight_decay_groups_are_evas_get_parameter_groups(tmp_path):
    cfg = eva_config(tmp_path, depth=1)
    model = instantiate(cfg.model)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    names = {id(p): n for n, p in model.named_parameters()}
    groups: dict[float, set[str]] = {}
    for group in optimizer.param_groups:
        groups.setdefault(group["weight_decay"], set()).update(names[id(p)] for p in group["params"])
    assert set(groups) == {0.0, 0.05}
    block = "encoder.vit.blocks.0."
    assert groups[0.0] == {
        "encoder.cls_token", "encoder.vit.pos_embed", "encoder.vit.patch_embed.proj.bias",
        block + "norm1.weight", block + "norm1.bias", block + "attn.q_bias", block + "attn.v_bias",
        block + "attn.proj.bias", block + "norm2.weight", block + "norm2.bias", block + "mlp.fc1.bias",
        block + "mlp.fc2.bias", "encoder.norm.weight", "encoder.norm.bias", "lm_head.bias",
    }
    assert groups[0.05] == {
        "mask_token", "encoder.vit.patch_embed.proj.weight", block + "attn.qkv.weight", block + "attn.proj.weight",
        block + "mlp.fc1.weight", block + "mlp.fc2.weight", "lm_head.weight",
    }
    assert groups[0.0] == official_no_decay(model)
    assert not any(n.startswith("teacher") for g in groups.values() for n in g)  # frozen, outside parameters()


# --- 4. the schedule ---------------------------------------------------------------------------------

def official_cosine_scheduler(base_value: float, final_value: float, epochs: int, niter_per_ep: int,
                              warmup_epochs: int = 0, start_warmup_value: float = 0,
                              warmup_steps: int = -1) -> np.ndarray:
    """utils.cosine_scheduler (sched_type "cos"), transcribed; run_eva_pretraining.py calls it without
    start_warmup_value, so --warmup_lr never reaches it."""
    warmup_schedule = np.array([])
    warmup_iters = warmup_epochs * niter_per_ep
    if warmup_steps > 0:
        warmup_iters = warmup_steps
    if warmup_epochs > 0:
        warmup_schedule = np.linspace(start_warmup_value, base_value, warmup_iters)
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    schedule = np.array([final_value + 0.5 * (base_value - final_value) * (1 + math.cos(math.pi * i / (len(iters))))
                         for i in iters])
    schedule = np.concatenate((warmup_schedule, schedule))
    assert len(schedule) == epochs * niter_per_ep
    return schedule


def _lrs(multiplier, lr: float, max_iter: int) -> list[float]:
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = LRMultiplier(opt, multiplier, max_iter)
    out = []
    for _ in range(max_iter):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("lr,epochs,iters_per_epoch,warmup_epochs", [(1e-3, 10, 40, 1), (2.5e-3, 8, 25, 2),
                                                                     (1e-3, 5, 3, 1)])
def test_every_iterations_lr_is_evas_cosine_scheduler(lr, epochs, iters_per_epoch, warmup_epochs):
    cfg = LazyConfig.load(os.path.join(REPO, EVA_CONFIG))
    total, warmup = epochs * iters_per_epoch, warmup_epochs * iters_per_epoch
    cfg = LazyConfig.apply_overrides(cfg, [f"train.max_iter={total}", f"lr_multiplier.warmup_iters={warmup}",
                                           f"optimizer.lr={lr}"])
    ours = _lrs(instantiate(cfg.lr_multiplier), lr, total)
    official = official_cosine_scheduler(lr, 1e-5, epochs, iters_per_epoch, warmup_epochs=warmup_epochs)
    np.testing.assert_allclose(ours, official, rtol=1e-9, atol=1e-15)
    assert ours[0] == 0.0 and ours[warmup - 1] == pytest.approx(lr) and ours[warmup] == pytest.approx(lr)
    assert min(ours[warmup:]) > 1e-5  # the floor is --min_lr, absolute


def test_the_paper_scale_schedule_starts_at_zero_and_ends_at_min_lr():
    cfg = LazyConfig.load(os.path.join(REPO, EVA_CONFIG))
    multiplier = instantiate(cfg.lr_multiplier)
    total, warmup = cfg.train.max_iter, cfg.lr_multiplier.warmup_iters
    assert (total, warmup) == (round(800 * 1281167 / 4096), round(10 * 1281167 / 4096))
    official = official_cosine_scheduler(1e-3, 1e-5, 1, total, warmup_steps=warmup, warmup_epochs=1)
    for i in (0, 1, warmup // 2, warmup - 1, warmup, warmup + 1, (warmup + total) // 2, total - 2, total - 1):
        assert 1e-3 * multiplier(i / total) == pytest.approx(official[i], rel=1e-9, abs=1e-15), i


def test_a_linspace_warmup_reaches_its_peak_one_iteration_early_and_bad_methods_fail():
    # The machinery on its own: 5 warm-up steps of np.linspace(0.1, 1, 5), then the main schedule.
    sched = WarmupParamScheduler(cosine_schedule(), warmup_iters=5, max_iter=20, warmup_factor=0.1,
                                 warmup_method="linspace", rescale_interval=True)
    np.testing.assert_allclose([sched(i / 20) for i in range(5)], np.linspace(0.1, 1.0, 5), rtol=1e-12)
    one = WarmupParamScheduler(cosine_schedule(), warmup_iters=1, max_iter=20, warmup_factor=0.0,
                               warmup_method="linspace", rescale_interval=True)
    assert one(0.0) == 0.0 and one(1 / 20) == pytest.approx(1.0)  # np.linspace(0, 1, 1) == [0]
    with pytest.raises(ValueError, match="Unknown warmup_method 'cosine': choose 'linear', 'linspace' or 'constant'"):
        WarmupParamScheduler(cosine_schedule(), warmup_iters=5, max_iter=20, warmup_method="cosine")
