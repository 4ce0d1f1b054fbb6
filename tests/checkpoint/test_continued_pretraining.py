"""Continued pre-training (``train.init_checkpoint`` of ``tools/pretrain_net.py``) and the way back
(``tools/convert_checkpoint.py --to mae|beit|mocov3|deit``), against the official models.

Each official model is written here the way its repository builds it (MAE's ``models_mae.py`` and
MoCo v3's ``vits.py`` / ``builder.py`` on timm's ``Block`` / ``VisionTransformer``, DeiT as timm's
``VisionTransformer``, BEiT's forward transcribed in ``test_beit_official``), so its
``state_dict()`` *is* the official layout (also checked against the key lists of
``shared/reference/checkpoint_formats.json``) and its forward is the official loss. A random
official state is saved to disk and loaded whole into this project's method model; zero
iterations later the loss on a fixed batch and noise must be the official one."""

import argparse
import copy
import importlib.util
import json
import os
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from vitdet_bench.checkpoint import (
    CheckpointError,
    load_backbone_checkpoint,
    load_init_checkpoint,
    safe_torch_load,
    to_official,
)
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.pretrain import MAE, BEiT, MoCoV3, SupervisedViT, build_pretrain_encoder
from vitdet_bench.pretrain.engine import pretrain_main

from helpers import FIXTURES, REPO
from helpers.official import (
    DEC_DIM,
    DEC_HEADS,
    DEPTH,
    DIM,
    HEADS,
    IMG,
    OfficialMAE,
    P,
    StubTokenizer,
    beit_encoder,
    fixed_mask,
    mae_training_file,
    official_logits,
    official_state,
    randomize,
    save,
)
from helpers.pretrain import pretrain_args

L = (IMG // P) ** 2
with open(os.path.join(FIXTURES, "official_key_lists.json")) as _f:
    OFFICIAL_KEYS = json.load(_f)  # from shared/reference/checkpoint_formats.json


# --- the official models -------------------------------------------------------------------------

def moco_mlp(num_layers: int, input_dim: int, mlp_dim: int, output_dim: int) -> nn.Sequential:
    """``MoCo._build_mlp``: bias-free Linear layers, BN + ReLU between, a last BN without affine."""
    widths = [input_dim] + [mlp_dim] * (num_layers - 1) + [output_dim]
    layers: list[nn.Module] = []
    for i, (d1, d2) in enumerate(zip(widths, widths[1:])):
        last = i == num_layers - 1
        layers += [nn.Linear(d1, d2, bias=False)]
        layers += [nn.BatchNorm1d(d2, affine=False)] if last else [nn.BatchNorm1d(d2), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class OfficialMoCoV3(nn.Module):
    """``moco.builder.MoCo_ViT`` on ``vits.VisionTransformerMoCo`` (a timm ViT whose head is the projector)."""

    def __init__(self, dim: int = 8, mlp_dim: int = 16, width: int = DIM, temperature: float = 0.2) -> None:
        super().__init__()
        self.T = temperature
        self.base_encoder = VisionTransformer(img_size=IMG, patch_size=P, embed_dim=width, depth=DEPTH, num_heads=HEADS)
        self.base_encoder.head = moco_mlp(3, width, mlp_dim, dim)
        self.momentum_encoder = copy.deepcopy(self.base_encoder)
        self.predictor = moco_mlp(2, dim, mlp_dim, dim)

    def contrastive_loss(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        logits = torch.einsum("nc,mc->nm", q, k) / self.T
        return F.cross_entropy(logits, torch.arange(logits.shape[0])) * (2 * self.T)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, m: float) -> torch.Tensor:
        q1, q2 = self.predictor(self.base_encoder(x1)), self.predictor(self.base_encoder(x2))
        with torch.no_grad():
            for pb, pm in zip(self.base_encoder.parameters(), self.momentum_encoder.parameters()):
                pm.data = pm.data * m + pb.data * (1.0 - m)
            k1, k2 = self.momentum_encoder(x1), self.momentum_encoder(x2)
        return self.contrastive_loss(q1, k2) + self.contrastive_loss(q2, k1)


def encoder(**kw):
    args = dict(img_size=IMG, embed_dim=DIM, depth=DEPTH, num_heads=HEADS)
    args.update(kw)
    return build_pretrain_encoder("vit_t", **args)


def our_mae(**kw) -> MAE:
    return MAE(encoder(pos_embed="sincos", **kw), decoder_dim=DEC_DIM, decoder_depth=1, decoder_num_heads=DEC_HEADS)


def our_moco(**kw) -> MoCoV3:
    return MoCoV3(encoder(pos_embed="sincos", freeze_patch_embed=True, **kw), dim=8, mlp_dim=16)


def our_deit(num_classes: int = 5, **kw) -> SupervisedViT:
    return SupervisedViT(encoder(**kw), num_classes=num_classes, mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.0)


def our_beit() -> BEiT:
    return BEiT(beit_encoder(), StubTokenizer(torch.zeros(1, IMG // P, IMG // P, dtype=torch.long)))


# --- the official layouts ---------------------------------------------------------------------------

def _shape_free(keys) -> set[str]:
    return {re.sub(r"\.\d+\.", ".N.", k, count=1) for k in keys}


def test_the_official_models_here_have_the_reference_key_lists():
    assert _shape_free(OfficialMAE().state_dict()) == set(OFFICIAL_KEYS["mae"])
    assert _shape_free("module." + k for k in OfficialMoCoV3().state_dict()) == set(OFFICIAL_KEYS["mocov3"])
    deit = VisionTransformer(img_size=IMG, patch_size=P, embed_dim=DIM, depth=DEPTH, num_heads=HEADS, num_classes=5)
    assert _shape_free(deit.state_dict()) == set(OFFICIAL_KEYS["deit"])
    assert _shape_free(official_state()) == set(OFFICIAL_KEYS["beit"])


# --- 0 iterations of continued pre-training = the official loss ---------------------------------------

def test_mae_continues_with_the_official_loss_decoder_included(tmp_path):
    official = randomize(OfficialMAE(), seed=0).eval()
    path = save(tmp_path, "checkpoint-799.pth", mae_training_file(official.state_dict()))
    model = our_mae()
    report = load_init_checkpoint(model, path)  # what train.init_checkpoint does for tools/pretrain_net.py
    assert report.ok and report.format == "mae" and not report.missing_expected and not report.unused
    assert len(report.loaded) == len(official.state_dict())  # decoder, mask token, cls token, norm: all of it
    assert model.init_source["epoch"] == 799 and model.init_source["args"]["mask_ratio"] == 0.75
    images = torch.randn(2, 3, IMG, IMG)
    noise = torch.rand(2, L, generator=torch.Generator().manual_seed(1))
    model.eval()
    loss, _, _ = model.forward_loss_terms(images, noise)
    with torch.no_grad():
        expected = official(images, noise)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    # Before this issue the decoder started from scratch: the loss was another one.
    fresh = our_mae()
    load_backbone_checkpoint(fresh, path)
    assert abs(float(fresh.eval().forward_loss_terms(images, noise)[0]) - float(expected)) > 1e-2


def test_mocov3_continues_with_the_official_loss_both_encoders_included(tmp_path):
    official = randomize(OfficialMoCoV3(), seed=1).train()
    state = {"module." + k: v for k, v in official.state_dict().items()}
    path = save(tmp_path, "checkpoint_0299.pth.tar", {"epoch": 300, "arch": "vit_base", "state_dict": state,
                                                     "optimizer": {}, "scaler": {}})
    model = our_moco()
    report = load_init_checkpoint(model, path)
    assert report.ok and report.format == "mocov3" and not report.unused and not report.missing_unexpected
    # The momentum encoder is the file's own (an EMA, not a copy of the base encoder).
    assert torch.equal(model.momentum_encoder.vit.blocks[1].mlp.fc1.weight,
                       state["module.momentum_encoder.blocks.1.mlp.fc1.weight"])
    assert torch.equal(model.momentum_projector[7].running_var, state["module.momentum_encoder.head.7.running_var"])
    x1, x2 = torch.randn(4, 3, IMG, IMG), torch.randn(4, 3, IMG, IMG)
    model.train()
    loss = model.loss(x1, x2)  # momentum 0.99 at progress 0, applied before the keys, as main_moco.py
    expected = official(x1, x2, m=0.99)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_beit_continues_with_the_official_loss_mask_token_and_lm_head_included(tmp_path):
    sd = official_state(seed=2)
    path = save(tmp_path, "checkpoint-799.pth", {"model": sd, "optimizer": {}, "epoch": 799,
                                                "args": argparse.Namespace(rel_pos_bias=True)})
    masked = fixed_mask()
    labels = torch.randint(0, 16, (2, IMG // P, IMG // P), generator=torch.Generator().manual_seed(0))
    model = BEiT(beit_encoder(), StubTokenizer(labels))
    report = load_init_checkpoint(model, path)
    assert report.ok and report.format == "beit" and not report.unused and not report.missing_unexpected
    raw = torch.rand(2, 3, IMG, IMG) * 255
    loss = model([{"image": raw[i], "mask": masked[i]} for i in range(2)])["loss_beit"]
    expected = F.cross_entropy(official_logits(sd, model.normalize(raw), masked), labels[masked])
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_deit_continues_with_its_head_or_a_new_one_for_another_class_count(tmp_path):
    official = randomize(VisionTransformer(img_size=IMG, patch_size=P, embed_dim=DIM, depth=DEPTH, num_heads=HEADS,
                                           num_classes=5), seed=3).eval()
    path = save(tmp_path, "deit.pth", {"model": official.state_dict()})
    images = torch.randn(2, 3, IMG, IMG)
    model = our_deit(5)
    report = load_init_checkpoint(model, path)
    assert report.ok and not report.missing_expected and not report.dropped
    torch.testing.assert_close(model.eval().logits(images), official(images), atol=1e-5, rtol=1e-5)
    # Another class count (DeiT's --finetune rule): the encoder loads, the head restarts, reported.
    other = our_deit(7)
    head = other.head.weight.detach().clone()
    report = load_init_checkpoint(other, path)
    assert report.ok and sorted(report.missing_expected) == ["head.bias", "head.weight"]
    assert list(report.dropped) == ["classification head for 5 classes (the model has 7): re-initialised"]
    assert torch.equal(other.head.weight, head)
    torch.testing.assert_close(other.encoder(images), model.encoder(images), atol=1e-6, rtol=1e-6)


def test_position_tables_resize_as_the_detectors_do(tmp_path):
    official = randomize(OfficialMAE(img=IMG), seed=4)
    path = save(tmp_path, "mae_full.pth", {"model": official.state_dict()})
    model = MAE(encoder(img_size=96, pos_embed="sincos"), decoder_dim=DEC_DIM, decoder_depth=1,
                decoder_num_heads=DEC_HEADS)
    report = load_init_checkpoint(model, path)
    assert report.ok
    assert {k for k, _, _ in report.resized} == {"encoder.vit.pos_embed", "decoder_pos_embed"}
    # MAE's util/pos_embed.interpolate_pos_embed: bicubic on the grid, the cls row kept.
    for ours, theirs in ((model.encoder.vit.pos_embed, official.pos_embed),
                         (model.decoder_pos_embed, official.decoder_pos_embed)):
        grid = theirs[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
        torch.testing.assert_close(ours.detach(), torch.cat((theirs[:, :1], grid), dim=1).detach())


# --- bad files fail naming the file, and the model keeps its values ------------------------------------

def test_another_methods_checkpoint_fails_naming_the_file_and_both_methods(tmp_path):
    official = randomize(OfficialMoCoV3(), seed=5)
    path = save(tmp_path, "vit-b-300ep.pth.tar", {"epoch": 300, "arch": "vit_base",
                                                 "state_dict": {"module." + k: v
                                                                for k, v in official.state_dict().items()}})
    model = our_mae()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as e:
        load_init_checkpoint(model, path)
    message = str(e.value)
    assert path in message and "method is MoCo v3, the model's MAE" in message
    assert "decoder_" in message and "predictor" in message and "train.init_strict=False" in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing loaded


def test_another_width_fails_naming_the_file_and_both_widths(tmp_path):
    path = save(tmp_path, "mae_wide.pth", mae_training_file(randomize(OfficialMAE(dim=48), seed=6).state_dict()))
    with pytest.raises(CheckpointError) as e:
        load_init_checkpoint(our_mae(), path)
    assert path in str(e.value) and "48 wide with 2 blocks, the model's 32 wide with 2" in str(e.value)
    deeper = save(tmp_path, "mae_deep.pth", {"model": randomize(OfficialMAE(depth=3), seed=6).state_dict()})
    with pytest.raises(CheckpointError, match="32 wide with 3 blocks, the model's 32 wide with 2"):
        load_init_checkpoint(our_mae(), deeper)


def test_an_encoder_only_release_says_which_file_holds_the_decoder(tmp_path):
    state = {k: v for k, v in randomize(OfficialMAE(), seed=7).state_dict().items()
             if not k.startswith(("decoder_", "mask_token"))}  # mae_pretrain_vit_base.pth
    path = save(tmp_path, "mae_pretrain_vit_base.pth", {"model": state})
    with pytest.raises(CheckpointError, match=r"_full\.pth") as e:
        load_init_checkpoint(our_mae(), path)
    assert path in str(e.value) and "decoder_pred.weight" in str(e.value)
    # Asked for, the encoder loads and the decoder starts fresh, reported as missing.
    model = our_mae()
    report = load_init_checkpoint(model, path, strict=False)
    assert "decoder_pred.weight" in report.missing_unexpected and "mask_token" in report.missing_unexpected
    assert torch.equal(model.encoder.vit.blocks[0].attn.qkv.weight, state["blocks.0.attn.qkv.weight"])


# --- the way back: this project's run -> the official layout -> this project -----------------------------

@pytest.mark.parametrize("to,make", [("mae", our_mae), ("mocov3", our_moco), ("deit", our_deit), ("beit", our_beit)])
def test_round_trip_through_the_official_layout_is_exact(tmp_path, to, make):
    torch.manual_seed(0)
    ours = randomize(make(), seed=8)
    official = to_official(ours.state_dict(), to, "model_final.pth")
    back = make()
    report = load_init_checkpoint(back, save(tmp_path, "official.pth", official))
    assert report.ok and report.format == to and not report.unused and not report.missing_unexpected
    theirs = back.state_dict()
    for k, v in ours.state_dict().items():
        assert torch.equal(v, theirs[k]), k
    if to == "mocov3":  # main_moco.py --resume reads all of these
        assert sorted(official) == ["arch", "epoch", "optimizer", "scaler", "state_dict"]
        assert all(k.startswith("module.") for k in official["state_dict"])


def test_official_files_load_into_the_official_models(tmp_path):
    """What ``--to`` writes is what the official code's strict ``load_state_dict`` accepts."""
    mae = randomize(our_mae(), seed=9)
    OfficialMAE().load_state_dict(to_official(mae.state_dict(), "mae")["model"], strict=True)
    moco = randomize(our_moco(), seed=9)
    state = to_official(moco.state_dict(), "mocov3")["state_dict"]
    OfficialMoCoV3().load_state_dict({k[len("module."):]: v for k, v in state.items()}, strict=True)
    deit = randomize(our_deit(), seed=9)
    VisionTransformer(img_size=IMG, patch_size=P, embed_dim=DIM, depth=DEPTH, num_heads=HEADS,
                      num_classes=5).load_state_dict(to_official(deit.state_dict(), "deit")["model"], strict=True)
    beit = to_official(randomize(our_beit(), seed=9).state_dict(), "beit")["model"]
    assert set(beit) == set(official_state()) and all(beit[k].shape == v.shape for k, v in official_state().items())


def _convert_tool():
    spec = importlib.util.spec_from_file_location("convert_checkpoint",
                                                  os.path.join(REPO, "tools", "convert_checkpoint.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.main


def test_convert_tool_writes_the_official_layout_and_refuses_what_is_not_a_whole_run(tmp_path, capsys):
    convert = _convert_tool()
    model = randomize(our_mae(), seed=10)
    run = save(tmp_path, "model_final.pth", {"model": model.state_dict(), "iteration": 99})
    out = str(tmp_path / "mae_official.pth")
    assert convert(["--to", "mae", run, out]) == 0
    written = safe_torch_load(out)
    official = OfficialMAE()
    official.load_state_dict(written["model"], strict=True)
    assert torch.equal(official.decoder_pred.weight, model.decoder_pred.weight)
    # A run of another method, and a backbone export (the encoder only), fail naming the file.
    with pytest.raises(SystemExit):
        convert(["--to", "mocov3", run, str(tmp_path / "x.pth")])
    err = capsys.readouterr().err
    assert run in err and "momentum_encoder" in err and not os.path.exists(tmp_path / "x.pth")
    export = str(tmp_path / "backbone_final.pth")
    from vitdet_bench.checkpoint import save_backbone_export

    save_backbone_export(model.export_state(), export, model.export_meta())
    with pytest.raises(SystemExit):
        convert(["--to", "mae", export, str(tmp_path / "y.pth")])
    assert "backbone export (the encoder only)" in capsys.readouterr().err and not os.path.exists(tmp_path / "y.pth")


# --- through tools/pretrain_net.py: the run, its exports and their lineage --------------------------------

def _args(opts: list[str], resume: bool = False) -> argparse.Namespace:
    return pretrain_args("projects/MAE/configs/mae_vit_tiny_demo.py", opts, resume)


def test_continued_run_exports_its_lineage_and_continues_the_chain(tmp_path, demo_root):
    cfg = LazyConfig.load(os.path.join(REPO, "projects/MAE/configs/mae_vit_tiny_demo.py"))
    released = to_official(randomize(instantiate(cfg.model), seed=11).state_dict(), "mae")
    init = save(tmp_path, "checkpoint-799.pth", {**mae_training_file(released["model"])})
    common = ["train.max_iter=2", "lr_multiplier.warmup_iters=1", "dataloader.train.dataset.size=32",
              "dataloader.train.total_batch_size=8", "train.log_period=1"]
    first = str(tmp_path / "first")
    pretrain_main(_args(common + [f"train.output_dir={first}", f"train.init_checkpoint={init}",
                                  "train.checkpointer.period=1"]))
    meta = safe_torch_load(os.path.join(first, "backbone_final.pth"))["meta"]
    assert meta["init"]["file"] == init and meta["init"]["epoch"] == 799 and meta["init"]["method"] == "mae"
    assert meta["lineage"] == ("started from checkpoint-799.pth (MAE official layout, epoch 799), then 2 iterations "
                               "(0.5 epochs) of mae on demo_pool_dataset (32 images)")
    with open(os.path.join(first, "log.txt")) as f:
        log = f.read()
    assert "74 tensors loaded" in log and "0 missing UNEXPECTEDLY" in log and "optimizer, epoch, scaler, args" in log
    # Resumed after an interruption (it loads its own checkpoint, not the init file), the run's
    # exports still know where it started.
    for f in ("model_final.pth", "backbone_final.pth"):
        os.remove(os.path.join(first, f))
    with open(os.path.join(first, "last_checkpoint"), "w") as f:
        f.write("model_0000000.pth")
    pretrain_main(_args(common + [f"train.output_dir={first}", "train.checkpointer.period=1"], resume=True))
    assert safe_torch_load(os.path.join(first, "backbone_final.pth"))["meta"]["lineage"] == meta["lineage"]
    # A second continuation from the first run's checkpoint keeps the whole chain.
    second = str(tmp_path / "second")
    pretrain_main(_args(common + [f"train.output_dir={second}",
                                  f"train.init_checkpoint={os.path.join(first, 'model_final.pth')}"]))
    meta2 = safe_torch_load(os.path.join(second, "backbone_final.pth"))["meta"]
    assert meta2["lineage"] == (
        "started from model_final.pth (run checkpoint, after 2 iterations), then 2 iterations (0.5 epochs) of mae on "
        "demo_pool_dataset (32 images) [model_final.pth: " + meta["lineage"] + "]")
