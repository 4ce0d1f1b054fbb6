"""Pre-trained checkpoints in their official containers load into the detection ViT and give
timm's features; load reports separate expected from unexpected misses; bad files fail clearly."""

import argparse
import fractions
import os
import subprocess
import sys

import pytest
import torch
from timm.models.beit import Beit

from vitdet_bench.checkpoint import (
    Checkpointer,
    CheckpointError,
    detect_format,
    load_backbone_checkpoint,
    safe_torch_load,
)

from helpers import REPO
from helpers.vit import GRID, IMG, containers, randomize, timm_vit, tiny_vit


def timm_patch_features(m, x):
    """timm's blocks on the patch tokens alone (no cls token), before its final norm."""
    tokens = m.patch_embed(x) + m.pos_embed[:, 1:]
    for blk in m.blocks:
        tokens = blk(tokens)
    b, n, c = tokens.shape
    side = int(n**0.5)
    return tokens.reshape(b, side, side, c).permute(0, 3, 1, 2)


@pytest.mark.parametrize("container", ["mae", "mae_finetuned", "deit", "mocov3", "timm"])
def test_vit_containers_give_timm_features(container, tmp_path):
    ref = timm_vit()
    path = str(tmp_path / f"{container}.pth")
    torch.save(containers(ref.state_dict())[container], path)
    expected_format = container.split("_")[0]
    assert detect_format(safe_torch_load(path)) == expected_format

    ours = tiny_vit(use_rel_pos=True).eval()  # decomposed rel-pos: zero-init, expected missing
    report = load_backbone_checkpoint(ours, path)
    assert report.format == expected_format
    assert report.ok, report.summary()
    assert report.missing_unexpected == [] and report.unused == []
    assert sorted(report.missing_expected) == sorted(
        f"blocks.{i}.attn.rel_pos_{a}" for i in range(2) for a in "hw")
    assert report.dropped  # cls token, final norm, heads, decoder, projector ... are accounted for
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)["last_feat"], timm_patch_features(ref, x), atol=1e-5, rtol=1e-5)


def test_moco_report_names_what_was_dropped(tmp_path):
    path = str(tmp_path / "moco.pth.tar")
    torch.save(containers(timm_vit().state_dict())["mocov3"], path)
    report = load_backbone_checkpoint(tiny_vit(), path)
    assert report.dropped == {"MoCo v3 projector": 6, "MoCo v3 momentum encoder": 6 + 30,
                              "MoCo v3 predictor": 1, "cls token (the detector has none)": 1,
                              "final norm (the detector taps blocks before it)": 2}
    text = report.summary()
    assert "format: mocov3" in text and "momentum encoder" in text


def timm_beit(shared: bool):
    m = Beit(img_size=IMG, patch_size=16, embed_dim=64, depth=2, num_heads=4, num_classes=10,
             use_abs_pos_emb=False, use_rel_pos_bias=not shared, use_shared_rel_pos_bias=shared, init_values=0.1)
    return randomize(m, seed=2).eval()


def beit_patch_features(m, x):
    """timm's BEiT blocks on patch tokens alone: each bias with the cls row and column removed."""
    tokens = m.patch_embed(x)
    shared = m.rel_pos_bias()[..., 1:, 1:] if m.rel_pos_bias is not None else None
    for blk in m.blocks:
        table = blk.attn.relative_position_bias_table
        if table is not None:
            bias = blk.attn._get_rel_pos_bias()[..., 1:, 1:]
            blk.attn.relative_position_bias_table = None
            tokens = blk(tokens, shared_rel_pos_bias=bias)
            blk.attn.relative_position_bias_table = table
        else:
            tokens = blk(tokens, shared_rel_pos_bias=shared)
    b, n, c = tokens.shape
    return tokens.reshape(b, GRID, GRID, c).permute(0, 3, 1, 2)


def beit_file(m, tmp_path, name):
    state = dict(m.state_dict())
    # Official files carry the index buffers and (pre-training) the MIM head and mask token.
    for i in range(len(m.blocks)):
        if m.blocks[i].attn.relative_position_bias_table is not None:
            state[f"blocks.{i}.attn.relative_position_index"] = m.blocks[i].attn.relative_position_index
    if m.rel_pos_bias is not None:
        state["rel_pos_bias.relative_position_index"] = m.rel_pos_bias.relative_position_index
        state["mask_token"] = torch.zeros(1, 1, 64)
        state["lm_head.weight"] = torch.zeros(8192, 64)
    path = str(tmp_path / name)
    torch.save({"model": state, "args": argparse.Namespace(layer_scale_init_value=0.1)}, path)
    return path


@pytest.mark.parametrize(
    "shared,model_kwargs",
    [
        (False, dict(rel_pos_bias="per_block", qv_bias=True, init_values=0.1)),  # fine-tuned BEiT as it is
        (True, dict(rel_pos_bias="shared", qv_bias=True, init_values=0.1)),  # pre-trained, shared (BENCH)
        (True, dict(rel_pos_bias="per_block", qv_bias=True, init_values=0.1)),  # shared expanded per block
        (False, dict(rel_pos_bias="per_block", qkv_bias=True, init_values=None)),  # fused bias, folded gamma
    ],
)
def test_beit_gives_timm_features(shared, model_kwargs, tmp_path):
    ref = timm_beit(shared)
    path = beit_file(ref, tmp_path, "beit.pth")
    ours = tiny_vit(use_abs_pos=False, **model_kwargs).eval()
    report = load_backbone_checkpoint(ours, path)
    assert report.format == "beit"
    assert report.ok, report.summary()
    assert report.missing_expected == []  # no abs pos in the model, so nothing BEiT lacks is asked for
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)["last_feat"], beit_patch_features(ref, x), atol=1e-5, rtol=1e-5)
    if model_kwargs.get("init_values") is None:
        assert any("folded into attn.proj" in how for _, how in report.converted)
        assert any("fused into qkv.bias" in how for _, how in report.converted)


def test_beit_tables_resized_to_the_detection_windows(tmp_path):
    """Pre-training grid 6x6; the detector uses 3x3 windows and a 12x12 global grid."""
    ref = timm_beit(shared=True)
    path = beit_file(ref, tmp_path, "beit_pt.pth")
    ours = tiny_vit(img_size=192, depth=2, window_size=3, window_block_indexes=[0], rel_pos_bias="shared",
                    qv_bias=True, init_values=0.1, use_abs_pos=True)
    report = load_backbone_checkpoint(ours, path)
    # From the checkpoint's shape (121 offset rows + BEiT's 3 cls rows) to the detector's (no cls token).
    assert sorted(report.resized) == [
        ("rel_pos_bias_global.relative_position_bias_table", (124, 4), (529, 4)),
        ("rel_pos_bias_window.relative_position_bias_table", (124, 4), (25, 4)),
    ]
    assert sorted(k for k, how in report.converted if "3 cls rows" in how and "dropped" in how) == [
        "rel_pos_bias_global.relative_position_bias_table", "rel_pos_bias_window.relative_position_bias_table"]
    assert report.missing_expected == ["pos_embed"]  # BEiT has none; BENCH random-inits it
    assert report.ok


def test_pos_embed_and_patch_embed_resizing(tmp_path):
    ref = timm_vit(img_size=64, patch_size=8)  # 8x8 grid of 8-px patches
    path = str(tmp_path / "p8.pth")
    torch.save({"model": {k: v for k, v in ref.state_dict().items() if not k.startswith("head")}}, path)
    ours = tiny_vit(pretrain_img_size=96)  # 6x6 table, 16-px patches
    report = load_backbone_checkpoint(ours, path)
    assert ("pos_embed", (1, 65, 64), (1, 37, 64)) in report.resized
    assert not report.ok
    assert any(k == "patch_embed.proj.weight" and "resize_patch_embed=True" in why for k, why in report.unused)
    report = load_backbone_checkpoint(ours, path, resize_patch_embed=True)
    assert ("patch_embed.proj.weight", (64, 3, 8, 8), (64, 3, 16, 16)) in report.resized
    assert report.ok
    with pytest.raises(CheckpointError, match="strict backbone load failed"):
        load_backbone_checkpoint(tiny_vit(init_values=0.1), path, resize_patch_embed=True, strict=True)


def test_unsafe_and_unknown_files_fail_clearly(tmp_path):
    bad = str(tmp_path / "not_a_vit.pth")
    torch.save({"model": {"conv1.weight": torch.zeros(2, 2)}, "epoch": 3}, bad)
    with pytest.raises(CheckpointError, match=r"no ViT blocks.*conv1.weight: tensor\(2, 2\)"):
        load_backbone_checkpoint(tiny_vit(), bad)
    unsafe = str(tmp_path / "unsafe.pth")
    torch.save({"model": {}, "obj": fractions.Fraction(1, 3)}, unsafe)
    with pytest.raises(CheckpointError, match="not safe to unpickle"):
        load_backbone_checkpoint(tiny_vit(), unsafe)
    mae = str(tmp_path / "mae.pth")
    torch.save(containers(timm_vit().state_dict())["mae"], mae)
    with pytest.raises(CheckpointError, match="read it as 'mocov3', but the detected format is 'mae'"):
        load_backbone_checkpoint(tiny_vit(), mae, format="mocov3")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_backbone_checkpoint(tiny_vit(), str(tmp_path / "missing.pth"))


def test_init_checkpoint_loads_a_pretrained_backbone_into_the_detector(tmp_path):
    from vitdet_bench.config import LazyConfig, instantiate

    from helpers import DEMO_CONFIG

    cfg = LazyConfig.load(DEMO_CONFIG)
    cfg.model.num_classes = 4
    model = instantiate(cfg.model)
    vit_cfg = cfg.model.backbone.bottom_up.net
    ref = timm_vit(img_size=224, embed_dim=vit_cfg.embed_dim, depth=vit_cfg.depth, num_heads=vit_cfg.num_heads)
    path = str(tmp_path / "mae.pth")
    torch.save({"model": {k: v for k, v in ref.state_dict().items() if not k.startswith("head")}}, path)
    head_before = model.roi_heads.box_predictor.cls_score.weight.clone()
    Checkpointer(model, str(tmp_path)).load(path, full=False)
    vit = model.backbone.bottom_up.net
    torch.testing.assert_close(vit.blocks[3].mlp.fc2.weight, ref.blocks[3].mlp.fc2.weight)
    torch.testing.assert_close(vit.pos_embed, ref.pos_embed)
    torch.testing.assert_close(model.roi_heads.box_predictor.cls_score.weight, head_before)


def test_convert_checkpoint_tool_round_trip(tmp_path):
    ref = timm_vit()
    src = str(tmp_path / "moco.pth.tar")
    torch.save(containers(ref.state_dict())["mocov3"], src)
    out = str(tmp_path / "converted.pth")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_checkpoint.py"), "--from", "mocov3",
                           src, out], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "MoCo v3 momentum encoder" in proc.stdout
    data = torch.load(out, weights_only=True)
    assert data["meta"]["source_format"] == "mocov3"
    assert detect_format(data) == "vitdet_bench"
    ours = tiny_vit().eval()
    report = load_backbone_checkpoint(ours, out)
    assert report.format == "vitdet_bench" and report.ok
    x = torch.randn(1, 3, IMG, IMG)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)["last_feat"], timm_patch_features(ref, x), atol=1e-5, rtol=1e-5)
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_checkpoint.py"), "--from", "beit",
                           src, out], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode != 0 and "detected format is 'mocov3'" in proc.stderr
