"""ConvMAE and MAE-Lite official checkpoints: continued pre-training (``train.init_checkpoint`` of
``tools/pretrain_net.py``) takes the whole method, ConvMAE's way back (``to_official`` /
``tools/convert_checkpoint.py --to convmae``) writes its official layout, and MAE-Lite's released
files (``module.model.`` inside ``"model"``) load as backbones and as whole methods.

The official models are written here as their repositories build them: ConvMAE's
``models_convmae.MaskedAutoencoderConvViT`` (its ``PatchEmbed``, ``CBlock`` and ``CMlp`` transcribed
from ``vision_transformer.py``, its ``Block`` is timm's), MAE-Lite's MAE wrapper around
``models_mae.MaskedAutoencoderViT`` (MAE's model: ``OfficialMAE`` of ``helpers.official``),
so their ``state_dict()`` is the official layout (checked against ``official_key_lists.json``) and
their forward the official loss."""

import argparse
import importlib.util
import json
import os
import re
from functools import partial

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import Block

from vitdet_bench.checkpoint import (
    CheckpointError,
    CheckpointFormatError,
    load_backbone_checkpoint,
    load_init_checkpoint,
    safe_torch_load,
    save_backbone_export,
    to_official,
)
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.modeling import ViT
from vitdet_bench.pretrain import (
    MAE,
    ConvMAE,
    FastConvMAE,
    MAELite,
    build_convmae_encoder,
    build_pretrain_encoder,
    build_teacher,
)
from vitdet_bench.pretrain.engine import pretrain_main

from helpers import FIXTURES, REPO
from helpers.official import OfficialMAE, mae_training_file, official_convmae_base_state, randomize, save
from helpers.pretrain import pretrain_args

with open(os.path.join(FIXTURES, "official_key_lists.json")) as _f:
    OFFICIAL_KEYS = json.load(_f)

# ConvMAE: the official forward hard-codes the 224-px grids (14 x 14 tokens, 56 / 28 conv maps).
CONV_DIMS, CONV_DEPTHS, CONV_HEADS, CONV_IMG = (8, 12, 16), (1, 1, 2), 2, 224
DEC_DIM, DEC_HEADS = 16, 2
# MAE-Lite: OfficialMAE's sizes (width 32, 2 blocks, 2 heads, 64 px).
DIM, DEPTH, HEADS, IMG = 32, 2, 2, 64


def _shape_free(keys) -> set[str]:
    """Block indexes as N (as the fixture), MAE-Lite's adapter index as K."""
    keys = {re.sub(r"\.\d+\.", ".N.", k, count=1) for k in keys}
    return {re.sub(r"attn_adapter\.adapter\d+\.", "attn_adapter.adapterK.", k) for k in keys}


# --- the official ConvMAE ------------------------------------------------------------------------

class OfficialPatchEmbed(nn.Module):
    """vision_transformer.PatchEmbed: conv, LayerNorm over channels (default eps), GELU."""

    def __init__(self, patch: int, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(cout)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.act(self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


class OfficialCMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class OfficialCBlock(nn.Module):
    """vision_transformer.CBlock: x + conv2(attn(mask * conv1(LN(x)))), then x + CMlp(LN(x))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = OfficialCMlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.conv2(self.attn(mask * self.conv1(self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))))
        return x + self.mlp(self.norm2(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


class OfficialConvMAE(nn.Module):
    """models_convmae.MaskedAutoencoderConvViT (norm_pix_loss=True), the noise passed in."""

    def __init__(self) -> None:
        super().__init__()
        (c1, c2, c3), (d1, d2, d3) = CONV_DIMS, CONV_DEPTHS
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.patch_embed1 = OfficialPatchEmbed(4, 3, c1)
        self.patch_embed2 = OfficialPatchEmbed(2, c1, c2)
        self.patch_embed3 = OfficialPatchEmbed(2, c2, c3)
        self.patch_embed4 = nn.Linear(c3, c3)
        self.stage1_output_decode = nn.Conv2d(c1, c3, 4, stride=4)
        self.stage2_output_decode = nn.Conv2d(c2, c3, 2, stride=2)
        self.pos_embed = nn.Parameter(torch.zeros(1, 196, c3), requires_grad=False)
        self.blocks1 = nn.ModuleList(OfficialCBlock(c1) for _ in range(d1))
        self.blocks2 = nn.ModuleList(OfficialCBlock(c2) for _ in range(d2))
        self.blocks3 = nn.ModuleList(Block(c3, CONV_HEADS, 4.0, qkv_bias=True, norm_layer=norm) for _ in range(d3))
        self.norm = norm(c3)
        self.decoder_embed = nn.Linear(c3, DEC_DIM)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, DEC_DIM))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, 196, DEC_DIM), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(DEC_DIM, DEC_HEADS, 4.0, qkv_bias=True, norm_layer=norm)])
        self.decoder_norm = norm(DEC_DIM)
        self.decoder_pred = nn.Linear(DEC_DIM, 16 * 16 * 3)

    def forward(self, imgs: torch.Tensor, noise: torch.Tensor, mask_ratio: float = 0.75) -> torch.Tensor:
        n, length = imgs.shape[0], 196
        keep = int(length * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :keep]
        mask = torch.ones(n, length)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        m1 = mask.reshape(-1, 14, 14).unsqueeze(-1).repeat(1, 1, 1, 16).reshape(-1, 14, 14, 4, 4).permute(
            0, 1, 3, 2, 4).reshape(n, 56, 56).unsqueeze(1)
        m2 = mask.reshape(-1, 14, 14).unsqueeze(-1).repeat(1, 1, 1, 4).reshape(-1, 14, 14, 2, 2).permute(
            0, 1, 3, 2, 4).reshape(n, 28, 28).unsqueeze(1)
        x = self.patch_embed1(imgs)
        for blk in self.blocks1:
            x = blk(x, 1 - m1)
        s1 = self.stage1_output_decode(x).flatten(2).permute(0, 2, 1)
        x = self.patch_embed2(x)
        for blk in self.blocks2:
            x = blk(x, 1 - m2)
        s2 = self.stage2_output_decode(x).flatten(2).permute(0, 2, 1)
        x = self.patch_embed4(self.patch_embed3(x).flatten(2).permute(0, 2, 1)) + self.pos_embed

        def gather(t):
            return torch.gather(t, 1, ids_keep.unsqueeze(-1).repeat(1, 1, t.shape[-1]))

        x, s1, s2 = gather(x), gather(s1), gather(s2)
        for blk in self.blocks3:
            x = blk(x)
        x = self.decoder_embed(self.norm(x + s1 + s2))
        x = torch.cat((x, self.mask_token.repeat(n, length - x.shape[1], 1)), dim=1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2])) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        pred = self.decoder_pred(self.decoder_norm(x))
        target = torch.einsum("nchpwq->nhwpqc", imgs.reshape(n, 3, 14, 16, 14, 16)).reshape(n, length, 768)
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
        return (((pred - target) ** 2).mean(dim=-1) * mask).sum() / mask.sum()


def our_convmae(cls=ConvMAE, img: int = CONV_IMG):
    enc = build_convmae_encoder(img_size=img, embed_dims=CONV_DIMS, depths=CONV_DEPTHS, num_heads=CONV_HEADS)
    return cls(enc, decoder_dim=DEC_DIM, decoder_depth=1, decoder_num_heads=DEC_HEADS)


def convmae_training_file(state: dict) -> dict:
    """What ConvMAE's main_pretrain.py writes (MAE's misc.save_model)."""
    return {"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 1599, "scaler": {},
            "args": argparse.Namespace(model="convmae_convvit_base_patch16", norm_pix_loss=True, mask_ratio=0.75)}


def _convert_tool():
    path = os.path.join(REPO, "tools", "convert_checkpoint.py")
    spec = importlib.util.spec_from_file_location("convert_checkpoint", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.main


# --- MAE-Lite's files -------------------------------------------------------------------------------

def maelite_file(official: OfficialMAE, ddp: bool = True, teacher: OfficialMAE | None = None,
                 adapter: torch.Tensor | None = None, adapter_block: int = DEPTH - 1) -> dict:
    """What mae-lite's tools/train.py writes: DDP(MAE(exp, model)).state_dict() under "model"
    (module.model.*), plus the distillation wrapper's tch_model (decoder deleted) and adapter."""
    state = {f"model.{k}": v for k, v in official.state_dict().items()}
    if teacher is not None:
        state.update({f"tch_model.{k}": v for k, v in teacher.state_dict().items()
                      if not k.startswith(("decoder_", "mask_token"))})
    if adapter is not None:
        state[f"attn_adapter.adapter{adapter_block}.weight"] = adapter
    if ddp:
        state = {f"module.{k}": v for k, v in state.items()}
    return {"start_epoch": 400, "model": state, "optimizer": {"state": {}, "param_groups": []}, "scheduler": {},
            "best_top1": 0.0, "best_top5": 0.0, "best_top1_epoch": 0, "scaler": {}}


def our_maelite(teacher=None) -> MAELite:
    enc = build_pretrain_encoder("vit_t", img_size=IMG, embed_dim=DIM, depth=DEPTH, num_heads=HEADS, pos_embed="sincos")
    return MAELite(enc, teacher=teacher, decoder_dim=16, decoder_depth=1, decoder_num_heads=2)


def _teacher(tmp_path):
    torch.manual_seed(1)
    enc = build_pretrain_encoder("vit_t", img_size=IMG, embed_dim=24, depth=1, num_heads=3, pos_embed="sincos")
    mae = MAE(enc, decoder_dim=16, decoder_depth=1, decoder_num_heads=2)
    path = str(tmp_path / "teacher_export.pth")
    save_backbone_export(mae.export_state(), path, mae.export_meta())
    return build_teacher(path, image_size=IMG)


# --- the official layouts ----------------------------------------------------------------------------

def test_the_official_models_here_have_the_reference_key_lists():
    assert _shape_free(OfficialConvMAE().state_dict()) == set(OFFICIAL_KEYS["convmae"])

    assert _shape_free(official_convmae_base_state()) == set(OFFICIAL_KEYS["convmae"])
    plain = maelite_file(OfficialMAE())["model"]
    assert _shape_free(plain) == set(OFFICIAL_KEYS["maelite"])
    distill = maelite_file(OfficialMAE(), teacher=OfficialMAE(), adapter=torch.zeros(3, HEADS, 1, 1))["model"]
    assert _shape_free(distill) == set(OFFICIAL_KEYS["maelite_distill"])


# --- ConvMAE: continued pre-training takes the whole method --------------------------------------------

def test_convmae_continues_with_the_official_loss_decoder_fusion_and_norm_included(tmp_path):
    official = randomize(OfficialConvMAE(), seed=0).eval()
    path = save(tmp_path, "checkpoint-1599.pth", convmae_training_file(official.state_dict()))
    model = our_convmae()
    report = load_init_checkpoint(model, path)  # what train.init_checkpoint does for tools/pretrain_net.py
    assert report.ok and report.format == "convmae", report.summary()
    assert not report.missing_expected and not report.unused and not report.dropped
    assert len(report.loaded) == len(official.state_dict())  # decoder, fusion convs, final norm: all of it
    for ours, theirs in (("encoder.stage1_output_decode.weight", "stage1_output_decode.weight"),
                         ("encoder.norm.bias", "norm.bias"),
                         ("encoder.convvit.blocks1.0.attn.weight", "blocks1.0.attn.weight"),
                         ("decoder_pred.weight", "decoder_pred.weight"), ("mask_token", "mask_token")):
        assert torch.equal(model.state_dict()[ours], official.state_dict()[theirs]), ours
    assert model.init_source["epoch"] == 1599 and model.init_source["method"] == "convmae"
    images = torch.randn(2, 3, CONV_IMG, CONV_IMG)
    noise = torch.rand(2, 196, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        loss, _, _ = model.eval().forward_loss_terms(images, noise)
        expected = official(images, noise)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    # FastConvMAE's model has the same tensors and takes the file too.
    assert load_init_checkpoint(our_convmae(FastConvMAE), path).ok


def test_convmae_position_tables_resize_to_another_grid(tmp_path):
    official = randomize(OfficialConvMAE(), seed=1)
    path = save(tmp_path, "convmae.pth", {"model": official.state_dict()})
    model = our_convmae(img=256)
    report = load_init_checkpoint(model, path)
    assert report.ok, report.summary()
    assert {k for k, _, _ in report.resized} == {"encoder.convvit.pos_embed", "decoder_pos_embed"}
    # ConvMAE's DET pos-embed interpolation (MAE's, no cls slot): bicubic on the 14 x 14 grid.
    grid = official.pos_embed.detach().reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(16, 16), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
    torch.testing.assert_close(model.encoder.convvit.pos_embed.detach(), grid)


def test_round_trip_through_convmaes_official_layout_is_exact(tmp_path):
    torch.manual_seed(0)
    ours = randomize(our_convmae(), seed=2)
    official = to_official(ours.state_dict(), "convmae", "model_final.pth")
    assert sorted(official) == ["model"]
    OfficialConvMAE().load_state_dict(official["model"], strict=True)  # what main_pretrain.py --resume loads
    back = our_convmae()
    report = load_init_checkpoint(back, save(tmp_path, "official.pth", official))
    assert report.ok and report.format == "convmae" and not report.unused and not report.missing_unexpected
    theirs = back.state_dict()
    for k, v in ours.state_dict().items():
        assert torch.equal(v, theirs[k]), k


def test_convert_tool_writes_convmaes_layout(tmp_path, capsys):
    convert = _convert_tool()
    model = randomize(our_convmae(), seed=3)
    run = save(tmp_path, "model_final.pth", {"model": model.state_dict(), "iteration": 9})
    out = str(tmp_path / "convmae_official.pth")
    assert convert(["--to", "convmae", run, out]) == 0
    official = OfficialConvMAE()
    official.load_state_dict(safe_torch_load(out)["model"], strict=True)
    assert torch.equal(official.stage2_output_decode.weight, model.encoder.stage2_output_decode.weight)
    assert torch.equal(official.blocks3[1].attn.qkv.weight, model.encoder.convvit.blocks3[1].attn.qkv.weight)
    # An MAE run is not a ConvMAE run: refused, naming the file and the tensors, nothing written.
    mae = randomize(OfficialMAE(), seed=3)
    ours = MAE(build_pretrain_encoder("vit_t", img_size=IMG, embed_dim=DIM, depth=DEPTH, num_heads=HEADS,
                                      pos_embed="sincos"), decoder_dim=16, decoder_depth=1, decoder_num_heads=2)
    load_init_checkpoint(ours, {"model": mae.state_dict()})
    mae_run = save(tmp_path, "mae_final.pth", {"model": ours.state_dict(), "iteration": 9})
    with pytest.raises(SystemExit):
        convert(["--to", "convmae", mae_run, str(tmp_path / "x.pth")])
    err = capsys.readouterr().err
    assert mae_run in err and "which the official convmae model has no place for (its encoder: ConvMAE's ConvViT" in err
    assert not os.path.exists(tmp_path / "x.pth")


def test_pretrain_net_continues_the_convmae_demo_from_an_official_file(tmp_path, demo_root):
    """tools/pretrain_net.py train.init_checkpoint=<main_pretrain.py file>: the whole method loads, the
    log has the load report, and the export records where it started."""
    config = "projects/ConvMAE/configs/convmae_convvit_tiny_demo.py"
    cfg = LazyConfig.load(os.path.join(REPO, config))
    released = to_official(randomize(instantiate(cfg.model), seed=13).state_dict(), "convmae")
    init = save(tmp_path, "checkpoint-1599.pth", convmae_training_file(released["model"]))
    out = str(tmp_path / "run")
    pretrain_main(pretrain_args(config, [f"train.output_dir={out}", f"train.init_checkpoint={init}", "train.max_iter=1",
                                         "lr_multiplier.warmup_iters=1", "dataloader.train.dataset.size=8",
                                         "dataloader.train.total_batch_size=4", "train.log_period=1"]))
    with open(os.path.join(out, "log.txt")) as f:
        log = f.read()
    n = len(released["model"])
    assert f"(format: convmae): {n} tensors loaded" in log and "0 missing UNEXPECTEDLY" in log
    assert "optimizer, epoch, scaler, args" in log  # not weights: the continued run starts its own
    meta = safe_torch_load(os.path.join(out, "backbone_final.pth"))["meta"]
    assert meta["init"]["file"] == init and meta["init"]["epoch"] == 1599 and meta["init"]["method"] == "convmae"
    assert meta["lineage"].startswith("started from checkpoint-1599.pth (ConvMAE official layout, epoch 1599)")


# --- ConvMAE: bad files fail naming the file, and the model keeps its values ------------------------------

def test_convmae_bad_files_fail_with_their_reason(tmp_path):
    mae_path = save(tmp_path, "mae_full.pth", mae_training_file(randomize(OfficialMAE(), seed=4).state_dict()))
    convmae_state = randomize(OfficialConvMAE(), seed=4).state_dict()
    convmae_path = save(tmp_path, "convmae.pth", convmae_training_file(convmae_state))
    model = our_convmae()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # A ViT file into ConvMAE.
    with pytest.raises(CheckpointFormatError, match=r"mae_full\.pth: the file is a plain ViT checkpoint .*"
                                                    r"no convolution stages"):
        load_init_checkpoint(model, mae_path)
    # A ConvMAE file into MAE.
    mae = MAE(build_pretrain_encoder("vit_t", img_size=IMG, embed_dim=DIM, depth=DEPTH, num_heads=HEADS,
                                     pos_embed="sincos"), decoder_dim=16, decoder_depth=1, decoder_num_heads=2)
    with pytest.raises(CheckpointFormatError, match=r"convmae\.pth: a ConvMAE checkpoint .* the MAE model's encoder "
                                                    r"is a plain ViT: continue it with a ConvMAE / FastConvMAE config"):
        load_init_checkpoint(mae, convmae_path)
    # A ConvMAE file into a plain ViT detector.
    vit = ViT(img_size=IMG, patch_size=16, embed_dim=DIM, depth=DEPTH, num_heads=HEADS, pretrain_img_size=IMG)
    with pytest.raises(CheckpointFormatError, match=r"convmae\.pth: a ConvMAE checkpoint .* but ViT's backbone is a "
                                                    r"plain ViT: use a ConvViT detector"):
        load_init_checkpoint(vit, convmae_path)
    # Asked to read an official file as an export.
    with pytest.raises(CheckpointFormatError, match=r"convmae\.pth: asked to read it as 'vitdet_bench', but it is a "
                                                    r"'convmae' file \(the"):
        load_init_checkpoint(model, convmae_path, format="vitdet_bench")
    with pytest.raises(CheckpointFormatError, match=r"asked to read it as 'mae', but it is a 'convmae' file \(the "
                                                    r"ConvMAE model's ConvViT reads 'convmae' files and 'vitdet_bench' "
                                                    r"exports\)"):
        load_init_checkpoint(model, convmae_path, format="mae")
    # A backbone export holds the ConvViT only: the decoder, fusion and norm are missing.
    export = str(tmp_path / "backbone_final.pth")
    donor = randomize(our_convmae(), seed=5)
    save_backbone_export(donor.encoder.export_state(), export, donor.export_meta())
    with pytest.raises(CheckpointError) as e:
        load_init_checkpoint(model, export)
    message = str(e.value)
    assert export in message and "A backbone export holds the encoder only" in message
    assert "encoder.stage1_output_decode" in message and "decoder_pred" in message
    # Another width: both widths named.
    wide = our_convmae()
    with pytest.raises(CheckpointError, match=r"32 wide with 2 blocks, the model's 16 wide with 2"):
        state = OfficialConvMAE().state_dict()
        state = {k: (torch.zeros(32, *v.shape[1:]) if k == "patch_embed3.proj.weight" else v) for k, v in state.items()}
        load_init_checkpoint(wide, save(tmp_path, "wide.pth", {"model": state}))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing loaded
    # to_official: a ConvMAE state without its fusion convs, and the read-only MAE-Lite layout.
    state = {k: v for k, v in randomize(our_convmae(), seed=6).state_dict().items()
             if not k.startswith("encoder.stage2_output_decode.")}
    with pytest.raises(CheckpointError, match=r"run\.pth: no encoder\.stage2_output_decode\.\* tensors, which "
                                              r"ConvMAE's official model has: not a ConvMAE run"):
        to_official(state, "convmae", "run.pth")
    with pytest.raises(ValueError, match=r"official layout to write must be one of \('mae', 'beit', 'mocov3', 'deit', "
                                         r"'convmae'\), got 'maelite' \(MAE-Lite's resume: none: mae-lite's train\.py "
                                         r"--resume also needs its optimizer, scheduler and scaler states\)"):
        to_official(state, "maelite")


# --- MAE-Lite: released files load as backbones and as whole methods ---------------------------------------

@pytest.mark.parametrize("ddp", [True, False])
def test_maelite_release_loads_into_a_detector_vit_and_converts(tmp_path, ddp):
    official = randomize(OfficialMAE(), seed=7)
    path = save(tmp_path, "mae_tiny_400e.pth.tar", maelite_file(official, ddp=ddp))
    vit = ViT(img_size=IMG, patch_size=16, embed_dim=DIM, depth=DEPTH, num_heads=HEADS, pretrain_img_size=IMG,
              window_size=2, window_block_indexes=[0], use_rel_pos=True)
    report = load_backbone_checkpoint(vit, path)
    assert report.ok and report.format == "maelite", report.summary()
    assert report.missing_expected and all(k.endswith(("rel_pos_h", "rel_pos_w")) for k in report.missing_expected)
    assert report.dropped == {"cls token (the detector has none)": 1,
                              "final norm (the detector taps blocks before it)": 2,
                              "mask token (pre-training only)": 1, "MAE decoder": 19}
    for k in ("patch_embed.proj.weight", "blocks.1.attn.qkv.weight", "blocks.0.mlp.fc2.bias"):
        assert torch.equal(vit.state_dict()[k], official.state_dict()[k]), k
    # tools/convert_checkpoint.py reads it (auto-detected and named), and its export loads the same.
    out = str(tmp_path / "export.pth")
    assert _convert_tool()(["--from", "maelite" if ddp else "auto", path, out]) == 0
    export = safe_torch_load(out)
    assert export["meta"]["source_format"] == "maelite" and export["meta"]["source_start_epoch"] == 400
    assert torch.equal(export["model"]["blocks.1.attn.qkv.weight"], official.state_dict()["blocks.1.attn.qkv.weight"])


def test_maelite_distillation_file_drops_its_teacher_and_adapter_for_a_detector(tmp_path):
    official = randomize(OfficialMAE(), seed=8)
    path = save(tmp_path, "d_mae_tiny.pth.tar", maelite_file(official, teacher=randomize(OfficialMAE(dim=48), seed=9),
                                                             adapter=torch.randn(3, HEADS, 1, 1)))
    vit = ViT(img_size=IMG, patch_size=16, embed_dim=DIM, depth=DEPTH, num_heads=HEADS, pretrain_img_size=IMG)
    report = load_backbone_checkpoint(vit, path, strict=True)
    assert report.dropped["MAE-Lite's frozen distillation teacher (tch_model)"] == 30  # MAE's encoder: 2 blocks
    assert report.dropped["MAE-Lite's attention adapter (distillation)"] == 1
    with pytest.raises(CheckpointFormatError, match=r"d_mae_tiny\.pth\.tar: asked to read it as 'mae', but the "
                                                    r"detected format is 'maelite'"):
        load_backbone_checkpoint(vit, path, format="mae")


def test_maelite_continues_with_the_official_loss_whole(tmp_path):
    official = randomize(OfficialMAE(), seed=10).eval()
    path = save(tmp_path, "mae_tiny_400e.pth.tar", maelite_file(official))
    model = our_maelite()
    report = load_init_checkpoint(model, path)
    assert report.ok and report.format == "maelite" and not report.unused and not report.missing_unexpected
    assert len(report.loaded) == len(official.state_dict()) and not report.missing_expected
    assert model.init_source["start_epoch"] == 400 and model.init_source["kind"] == "MAE-Lite official layout"
    images = torch.randn(2, 3, IMG, IMG)
    noise = torch.rand(2, (IMG // 16) ** 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        loss = model.eval().forward_distill_terms(model.pixel_mean + model.pixel_std * images, noise)["loss_mae"]
        expected = official(images, noise)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_maelite_distillation_file_continues_with_its_adapter(tmp_path):
    official = randomize(OfficialMAE(), seed=11)
    adapter = torch.randn(3, HEADS, 1, 1)
    path = save(tmp_path, "d_mae_tiny.pth.tar", maelite_file(official, teacher=randomize(OfficialMAE(dim=48), seed=12),
                                                             adapter=adapter))
    teacher = _teacher(tmp_path)
    model = our_maelite(teacher)
    report = load_init_checkpoint(model, path)
    assert report.ok and not report.missing_unexpected, report.summary()
    assert torch.equal(model.attn_adapter.weight, adapter)
    assert ("attn_adapter.weight", f"from attn_adapter.adapter{DEPTH - 1}.weight (MAE-Lite's adapter of block "
                                   f"{DEPTH})") in report.converted
    assert report.dropped == {"MAE-Lite's frozen teacher (the distillation teacher is built from teacher.path)": 30}
    assert torch.equal(model.encoder.vit.blocks[1].attn.qkv.weight, official.blocks[1].attn.qkv.weight)
    # Without a teacher the adapter has no place: dropped, and the student loads.
    plain = our_maelite()
    report = load_init_checkpoint(plain, path)
    assert report.ok and report.dropped["MAE-Lite's attention adapter (distillation; the model has no teacher)"] == 1
    # A distilling model from a file without distillation: its adapter starts anew, as expected.
    no_distill = save(tmp_path, "mae_tiny_400e.pth.tar", maelite_file(official))
    fresh = our_maelite(teacher)
    before = fresh.attn_adapter.weight.detach().clone()
    report = load_init_checkpoint(fresh, no_distill)
    assert report.ok and report.missing_expected == ["attn_adapter.weight"]
    assert torch.equal(fresh.attn_adapter.weight, before)
    # An adapter of another block: refused with both blocks named.
    other = save(tmp_path, "other_block.pth.tar", maelite_file(official, adapter=adapter, adapter_block=0))
    with pytest.raises(CheckpointError) as e:
        load_init_checkpoint(our_maelite(teacher), other)
    assert other in str(e.value)
    assert "MAE-Lite's adapter of block 1 (distill_attn_idx); the model distils block 2 of 2" in str(e.value)
