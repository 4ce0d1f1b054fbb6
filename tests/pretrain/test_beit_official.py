"""BEiT pre-training against the official code (microsoft/unilm ``beit/``) and timm's ``beit``:
the shared bias table with its 3 cls rows (index, logits, loss, gradients, load and export), the
+-1 std truncated init, every method's parameter groups against its official rule, and BEiT's
schedule ends."""

import argparse
import importlib.util
import math
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.beit import RelativePositionBias as TimmRelativePositionBias
from timm.models.beit import gen_relative_position_index

from vitdet_bench.checkpoint import load_backbone_checkpoint, safe_torch_load, save_backbone_export
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.modeling import ViT
from vitdet_bench.modeling.backbone import RelativePositionBias
from vitdet_bench.pretrain import MAE, BEiT, MoCoV3, SupervisedViT, build_pretrain_encoder
from vitdet_bench.solver import LRMultiplier

from helpers import REPO
from helpers.official import (
    DEPTH,
    DIM,
    GRID,
    HEADS,
    IMG,
    VOCAB,
    StubTokenizer,
    beit_encoder,
    fixed_mask,
    official_index,
    official_logits,
    official_state,
)

# --- the official model, written out --------------------------------------------------------

def beit_from_official(sd: dict, ids: torch.Tensor) -> BEiT:
    """Our BEiT with the official weights: the ViT through the checkpoint loader (the path
    continued pre-training takes), the wrapper's tokens, final norm and head copied."""
    model = BEiT(beit_encoder(), StubTokenizer(ids))
    report = load_backbone_checkpoint(model, {"model": sd}, format="beit")
    assert report.ok and not report.missing_expected, report.summary()
    with torch.no_grad():
        model.encoder.cls_token.copy_(sd["cls_token"])
        model.mask_token.copy_(sd["mask_token"])
        model.encoder.norm.weight.copy_(sd["norm.weight"])
        model.encoder.norm.bias.copy_(sd["norm.bias"])
        model.lm_head.weight.copy_(sd["lm_head.weight"])
        model.lm_head.bias.copy_(sd["lm_head.bias"])
    return model


# --- 1. the shared table's cls rows -----------------------------------------------------------

@pytest.mark.parametrize("window", [(4, 4), (3, 5), (14, 14)])
def test_table_shape_and_index_equal_timm_beit(window):
    ours = RelativePositionBias(window, num_heads=3, cls_token=True)
    ref = TimmRelativePositionBias(window, num_heads=3)
    assert ours.relative_position_bias_table.shape == ref.relative_position_bias_table.shape  # 732 x 3 at 14 x 14
    torch.manual_seed(0)
    with torch.no_grad():
        ref.relative_position_bias_table.normal_()
        ours.relative_position_bias_table.copy_(ref.relative_position_bias_table)
    torch.testing.assert_close(ours(with_cls=True), ref(), rtol=0, atol=0)
    torch.testing.assert_close(ours(), ref()[:, 1:, 1:], rtol=0, atol=0)  # the detector's view: no cls token
    if window == (4, 4):  # timm's index is the official one (transcribed above)
        assert torch.equal(gen_relative_position_index(window), official_index(*window))
    plain = RelativePositionBias(window, num_heads=3)
    assert plain.relative_position_bias_table.shape[0] == ref.relative_position_bias_table.shape[0] - 3
    with pytest.raises(ValueError, match="cls rows"):
        plain(with_cls=True)


def test_cls_rows_need_a_shared_table_and_a_matching_encoder():
    with pytest.raises(ValueError, match="rel_pos_cls_token needs rel_pos_bias='shared'"):
        ViT(img_size=IMG, embed_dim=DIM, depth=1, num_heads=HEADS, rel_pos_bias="per_block", rel_pos_cls_token=True)
    vit = ViT(img_size=IMG, embed_dim=DIM, depth=1, num_heads=HEADS, use_abs_pos=False, rel_pos_bias="shared")
    from vitdet_bench.pretrain import PretrainEncoder

    with pytest.raises(ValueError, match="rel_pos_cls_token=False"):
        PretrainEncoder(vit, cls_token=True, pos_embed="none")
    enc = beit_encoder()
    assert enc.vit.rel_pos_bias_global.relative_position_bias_table.shape == ((2 * GRID - 1) ** 2 + 3, HEADS)


def test_logits_loss_and_gradients_equal_the_official_model_with_cls_rows():
    torch.manual_seed(0)
    sd = official_state()
    masked = fixed_mask()
    labels_grid = torch.randint(0, VOCAB, (2, GRID, GRID))
    model = beit_from_official(sd, labels_grid)
    raw = torch.rand(2, 3, IMG, IMG) * 255
    images = model.normalize(raw)

    ref_sd = {k: v.clone().requires_grad_(v.is_floating_point()) for k, v in sd.items()}
    ref = official_logits(ref_sd, images, masked)
    ours = model.forward_logits(images, masked)
    assert ours.shape == (int(masked.sum()), VOCAB)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-5)

    loss = model([{"image": raw[i], "mask": masked[i]} for i in range(2)])["loss_beit"]
    ref_loss = F.cross_entropy(ref, labels_grid[masked])
    assert float(loss.detach()) == pytest.approx(float(ref_loss.detach()), rel=1e-5)

    loss.backward()
    ref_loss.backward()
    table = model.encoder.vit.rel_pos_bias_global.relative_position_bias_table
    ref_grad = ref_sd["rel_pos_bias.relative_position_bias_table"].grad
    torch.testing.assert_close(table.grad, ref_grad, atol=1e-6, rtol=1e-4)
    assert ref_grad[-3:].abs().min() > 0  # the cls rows are learned from the first step
    torch.testing.assert_close(model.encoder.vit.blocks[0].attn.qkv.weight.grad,
                               ref_sd["blocks.0.attn.qkv.weight"].grad,
                               atol=1e-6, rtol=1e-4)
    # Without the cls rows (what the model did before), the same weights give other logits.
    zero_cls = dict(sd)
    zero_cls["rel_pos_bias.relative_position_bias_table"] = torch.cat(
        (sd["rel_pos_bias.relative_position_bias_table"][:-3], torch.zeros(3, HEADS)))
    assert (official_logits(zero_cls, images, masked) - ref).abs().max() > 1e-2


def test_official_checkpoint_keeps_cls_rows_through_load_and_export(tmp_path):
    sd = official_state(seed=1)
    path = str(tmp_path / "beit_pt.pth")
    torch.save({"model": sd, "optimizer": {}, "epoch": 799, "args": argparse.Namespace(rel_pos_bias=True)}, path)
    table = sd["rel_pos_bias.relative_position_bias_table"]

    # Continued pre-training: the encoder's table takes all rows, cls rows included.
    model = BEiT(beit_encoder(), StubTokenizer(torch.zeros(1, GRID, GRID, dtype=torch.long)))
    report = load_backbone_checkpoint(model, path)
    assert report.ok, report.summary()
    assert not any("cls rows" in how for _, how in report.converted)
    assert torch.equal(model.encoder.vit.rel_pos_bias_global.relative_position_bias_table, table)

    # Export: BEiT's name and layout, rows unchanged.
    export = str(tmp_path / "backbone.pth")
    save_backbone_export(model.export_state(), export, model.export_meta())
    exported = safe_torch_load(export)["model"]
    assert torch.equal(exported["rel_pos_bias.relative_position_bias_table"], table)

    # tools/convert_checkpoint.py keeps them too, and its output loads back unchanged.
    spec = importlib.util.spec_from_file_location("convert_checkpoint",
                                                  os.path.join(REPO, "tools", "convert_checkpoint.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    convert = tool.main
    converted = str(tmp_path / "converted.pth")
    assert convert(["--from", "beit", path, converted]) == 0
    assert torch.equal(safe_torch_load(converted)["model"]["rel_pos_bias.relative_position_bias_table"], table)
    again = BEiT(beit_encoder(), StubTokenizer(torch.zeros(1, GRID, GRID, dtype=torch.long)))
    load_backbone_checkpoint(again, converted)
    assert torch.equal(again.encoder.vit.rel_pos_bias_global.relative_position_bias_table, table)

    # The detector has no cls token: its tables drop the rows, and the report says so.
    detector_vit = ViT(img_size=IMG, embed_dim=DIM, depth=DEPTH, num_heads=HEADS, use_abs_pos=False, window_size=GRID,
                       window_block_indexes=[0], rel_pos_bias="shared", qv_bias=True, init_values=0.1)
    report = load_backbone_checkpoint(detector_vit, export)
    assert report.ok, report.summary()
    dropped = {k for k, how in report.converted if "3 cls rows" in how and "dropped: the model has no cls token" in how}
    assert dropped == {"rel_pos_bias_window.relative_position_bias_table",
                       "rel_pos_bias_global.relative_position_bias_table"}
    assert "cls rows" in report.summary()
    assert torch.equal(detector_vit.rel_pos_bias_window.relative_position_bias_table, table[:-3])

    # A table without cls rows (an older export) gives the pre-training encoder zero cls rows, reported.
    old = {k: v for k, v in exported.items()}
    old["rel_pos_bias.relative_position_bias_table"] = table[:-3]
    report = load_backbone_checkpoint(BEiT(beit_encoder(), StubTokenizer(torch.zeros(1))), {"model": old},
                                      format="beit")
    assert any("3 cls rows zero-initialised" in how for _, how in report.converted)


# --- 2. initialisation ----------------------------------------------------------------------------

def test_beit_init_is_the_official_one_sigma_truncated_normal():
    torch.manual_seed(0)
    enc = build_pretrain_encoder("vit_t", img_size=224, embed_dim=192, depth=2, num_heads=3, pos_embed="none",
                                 rel_pos_bias="shared", init_values=0.1, qv_bias=True)
    model = BEiT(enc, StubTokenizer(torch.zeros(1)))
    model.lm_head = nn.Linear(192, 8192)  # BEiT's vocabulary, for a large sample
    model._init_weights()
    # A unit normal truncated to [-1, 1] has std sqrt(1 - 2 phi(1) / (2 Phi(1) - 1)) = 0.5396.
    phi1 = math.exp(-0.5) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    expected_std = 0.02 * math.sqrt(1 - 2 * phi1 / (2 * big_phi - 1))
    assert expected_std == pytest.approx(0.0108, abs=1e-4)
    vit = enc.vit
    tensors = {
        "lm_head": model.lm_head.weight,
        "qkv": vit.blocks[0].attn.qkv.weight,
        "fc1": vit.blocks[1].mlp.fc1.weight,
        "patch_proj": vit.patch_embed.proj.weight,
    }
    for name, t in tensors.items():
        t = t.detach()
        assert t.abs().max() <= 0.02, name
        assert float(t.std()) == pytest.approx(expected_std, rel=0.03), name
    for token in (enc.cls_token, model.mask_token):
        assert token.abs().max() <= 0.02
    # fix_init_weight: block l's output projections divided by sqrt(2 l).
    for layer, blk in enumerate(vit.blocks, start=1):
        for w in (blk.attn.proj.weight.detach(), blk.mlp.fc2.weight.detach()):
            assert w.abs().max() <= 0.02 / math.sqrt(2 * layer) + 1e-9
            assert float(w.std()) == pytest.approx(expected_std / math.sqrt(2 * layer), rel=0.05)
    zero = [vit.patch_embed.proj.bias, model.lm_head.bias, vit.blocks[0].attn.q_bias, vit.blocks[0].attn.v_bias,
            vit.blocks[0].mlp.fc1.bias, vit.rel_pos_bias_global.relative_position_bias_table]
    assert all(float(t.detach().abs().max()) == 0.0 for t in zero)
    torch.testing.assert_close(vit.blocks[0].ls1.gamma, torch.full((192,), 0.1))
    # Not applied to other methods: MAE keeps its xavier-uniform init (wider, bounded by sqrt(6 / fan sum)).
    mae = MAE(build_pretrain_encoder("vit_t", img_size=224, embed_dim=192, depth=1, num_heads=3, pos_embed="sincos"),
              decoder_dim=32, decoder_depth=1, decoder_num_heads=2)
    qkv = mae.encoder.vit.blocks[0].attn.qkv.weight.detach()
    assert float(qkv.abs().max()) > 0.05 and float(qkv.std()) == pytest.approx(math.sqrt(2 / (192 + 576)), rel=0.03)


# --- 3. parameter groups per method, against the official rules ---------------------------------

def _groups(config: str, model: nn.Module) -> dict[str, set[str]]:
    cfg = LazyConfig.load(os.path.join(REPO, config))
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    names = {id(p): n for n, p in model.named_parameters()}
    out: dict[str, set[str]] = {}
    for group in optimizer.param_groups:
        key = "no_decay" if group["weight_decay"] == 0 else f"decay {group['weight_decay']}"
        out.setdefault(key, set()).update(names[id(p)] for p in group["params"])
    return out


def _official_rule(model: nn.Module, skip: set[str]) -> set[str]:
    """timm's add_weight_decay / BEiT's get_parameter_groups: 1-D, ``.bias`` or in the skip list
    (the official model's no_weight_decay(), by the parameter's own name) take no decay."""
    return {n for n, p in model.named_parameters()
            if p.requires_grad and (p.ndim == 1 or n.endswith(".bias") or n.split(".")[-1] in skip)}


BLOCK = "encoder.vit.blocks.0."


def test_beit_parameter_groups_are_optim_factorys():
    model = BEiT(beit_encoder(depth=1), StubTokenizer(torch.zeros(1)))
    groups = _groups("projects/BEiT/configs/beit_vit_b_800ep.py", model)
    assert groups == {
        "no_decay": {
            "encoder.cls_token", "encoder.vit.patch_embed.proj.bias", BLOCK + "norm1.weight", BLOCK + "norm1.bias",
            BLOCK + "attn.q_bias", BLOCK + "attn.v_bias", BLOCK + "attn.proj.bias", BLOCK + "ls1.gamma",
            BLOCK + "norm2.weight", BLOCK + "norm2.bias", BLOCK + "mlp.fc1.bias", BLOCK + "mlp.fc2.bias",
            BLOCK + "ls2.gamma", "encoder.norm.weight", "encoder.norm.bias", "lm_head.bias",
        },
        "decay 0.05": {
            "mask_token", "encoder.vit.patch_embed.proj.weight",
            "encoder.vit.rel_pos_bias_global.relative_position_bias_table",
            BLOCK + "attn.qkv.weight", BLOCK + "attn.proj.weight", BLOCK + "mlp.fc1.weight", BLOCK + "mlp.fc2.weight",
            "lm_head.weight",
        },
    }
    assert groups["no_decay"] == _official_rule(model, skip={"cls_token", "pos_embed"})


def test_mae_parameter_groups_are_add_weight_decays():
    encoder = build_pretrain_encoder("vit_t", img_size=IMG, embed_dim=DIM, depth=1, num_heads=HEADS, pos_embed="sincos")
    model = MAE(encoder, decoder_dim=16, decoder_depth=1, decoder_num_heads=2)
    groups = _groups("projects/MAE/configs/mae_vit_b_800ep.py", model)
    dec = "decoder_blocks.0."
    assert groups == {
        "no_decay": {
            "encoder.vit.patch_embed.proj.bias", BLOCK + "norm1.weight", BLOCK + "norm1.bias", BLOCK + "attn.qkv.bias",
            BLOCK + "attn.proj.bias", BLOCK + "norm2.weight", BLOCK + "norm2.bias", BLOCK + "mlp.fc1.bias",
            BLOCK + "mlp.fc2.bias", "encoder.norm.weight", "encoder.norm.bias", "decoder_embed.bias",
            dec + "norm1.weight", dec + "norm1.bias", dec + "attn.qkv.bias", dec + "attn.proj.bias",
            dec + "norm2.weight",
            dec + "norm2.bias", dec + "mlp.fc1.bias", dec + "mlp.fc2.bias", "decoder_norm.weight", "decoder_norm.bias",
            "decoder_pred.bias",
        },
        # No skip list: cls and mask tokens decay; the fixed sin-cos pos_embed has no gradient.
        "decay 0.05": {
            "encoder.cls_token", "mask_token", "encoder.vit.patch_embed.proj.weight", BLOCK + "attn.qkv.weight",
            BLOCK + "attn.proj.weight", BLOCK + "mlp.fc1.weight", BLOCK + "mlp.fc2.weight", "decoder_embed.weight",
            dec + "attn.qkv.weight", dec + "attn.proj.weight", dec + "mlp.fc1.weight", dec + "mlp.fc2.weight",
            "decoder_pred.weight",
        },
    }
    assert groups["no_decay"] == _official_rule(model, skip=set())


def test_mocov3_decays_every_parameter():
    enc = build_pretrain_encoder("vit_t", img_size=IMG, embed_dim=DIM, depth=1, num_heads=HEADS, pos_embed="sincos",
                                 freeze_patch_embed=True)
    model = MoCoV3(enc, dim=8, mlp_dim=16)
    groups = _groups("projects/MoCoV3/configs/mocov3_vit_b_300ep.py", model)
    heads = {f"{m}.{i}.{w}" for m, layers in (("projector", (1, 4)), ("predictor", (1,))) for i in layers
             for w in ("weight", "bias")}
    heads |= {"projector.0.weight", "projector.3.weight", "projector.6.weight", "predictor.0.weight",
              "predictor.3.weight"}
    assert groups == {
        "decay 0.1": {
            "encoder.cls_token", BLOCK + "norm1.weight", BLOCK + "norm1.bias", BLOCK + "attn.qkv.weight",
            BLOCK + "attn.qkv.bias", BLOCK + "attn.proj.weight", BLOCK + "attn.proj.bias", BLOCK + "norm2.weight",
            BLOCK + "norm2.bias", BLOCK + "mlp.fc1.weight", BLOCK + "mlp.fc1.bias", BLOCK + "mlp.fc2.weight",
            BLOCK + "mlp.fc2.bias", "encoder.norm.weight", "encoder.norm.bias", *heads,
        },
    }  # frozen: the patch projection, the sin-cos positions and the momentum encoder and projector


def test_supervised_parameter_groups_are_deits():
    model = SupervisedViT(build_pretrain_encoder("vit_t", img_size=IMG, embed_dim=DIM, depth=1, num_heads=HEADS),
                          num_classes=4, mixup_alpha=0.0, cutmix_alpha=0.0)
    groups = _groups("projects/Supervised/configs/deit_vit_b_300ep.py", model)
    assert groups["decay 0.05"] == {
        "encoder.vit.patch_embed.proj.weight", BLOCK + "attn.qkv.weight", BLOCK + "attn.proj.weight",
        BLOCK + "mlp.fc1.weight", BLOCK + "mlp.fc2.weight", "head.weight",
    }
    assert groups["no_decay"] == _official_rule(model, skip={"cls_token", "pos_embed"})
    assert {"encoder.cls_token", "encoder.vit.pos_embed", "head.bias"} <= groups["no_decay"]


# --- 4. schedule ---------------------------------------------------------------------------------

def official_cosine_scheduler(base: float, final: float, iters: int, warmup: int) -> np.ndarray:
    """utils.cosine_scheduler(base, final, epochs=1, niter_per_ep=iters, warmup_steps=warmup), transcribed."""
    ramp = np.linspace(0.0, base, warmup)
    steps = np.arange(iters - warmup)
    return np.concatenate((ramp, final + 0.5 * (base - final) * (1 + np.cos(np.pi * steps / len(steps)))))


@pytest.mark.parametrize("lr", [1.5e-3, 4e-3])
def test_beit_schedule_starts_at_zero_and_ends_at_min_lr(lr):
    cfg = LazyConfig.load(os.path.join(REPO, "projects/BEiT/configs/beit_vit_b_800ep.py"))
    cfg = LazyConfig.apply_overrides(cfg, ["train.max_iter=400", "lr_multiplier.warmup_iters=40", f"optimizer.lr={lr}"])
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = LRMultiplier(opt, instantiate(cfg.lr_multiplier), 400)
    ours = []
    for _ in range(400):
        ours.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ref = official_cosine_scheduler(lr, 1e-5, 400, 40)
    assert ours[0] == 0.0
    np.testing.assert_allclose(ours[40:], ref[40:], rtol=1e-5)  # the cosine over the steps after the warm-up
    np.testing.assert_allclose(ours[:40], ref[:40], atol=lr / 40)  # the ramp: i / 40 here, i / 39 in linspace
    assert min(ours[40:]) > 1e-5 and ours[-1] == pytest.approx(ref[-1], rel=1e-5)  # the floor is absolute


def test_maelite_parameter_groups_and_schedule_are_mae_lites():
    """mae-lite's ``create_optimizer`` (timm's, with ``filter_bias_and_bn``) on a model without a
    ``no_weight_decay`` list: timm's ``param_groups_weight_decay``; its "warmcos" schedule: linear
    warm-up from 0, then a cosine to 0 over the steps after the warm-up."""
    from timm.optim import param_groups_weight_decay

    from vitdet_bench.pretrain import MAELite

    model = MAELite(build_pretrain_encoder("vit_t", img_size=IMG, embed_dim=DIM, depth=1, num_heads=HEADS,
                                           pos_embed="sincos"), decoder_dim=16, decoder_depth=1, decoder_num_heads=2)
    groups = _groups("projects/MAELite/configs/maelite_vit_tiny_400ep.py", model)
    names = {id(p): n for n, p in model.named_parameters()}
    timm_groups = param_groups_weight_decay(model, weight_decay=0.05)
    expected_no_decay = {names[id(p)] for g in timm_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert groups["no_decay"] == expected_no_decay and "mask_token" in groups["decay 0.05"]

    cfg = LazyConfig.load(os.path.join(REPO, "projects/MAELite/configs/maelite_vit_tiny_400ep.py"))
    sched = instantiate(cfg.lr_multiplier)
    total, warm = cfg.train.max_iter, cfg.lr_multiplier.warmup_iters
    for count in (0, warm // 2, warm, (warm + total) // 2, total - 1):
        if count < warm:
            official = count / warm
        else:
            official = 0.5 * (1.0 + math.cos(math.pi * (count - warm) / (total - warm)))
        assert sched(count / total) == pytest.approx(official, abs=1e-6), count
