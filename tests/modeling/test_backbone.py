"""The ViT family and its necks, checked against references: timm's layers and models, plain
global attention, the explicit attention path, published parameter counts."""

import numpy as np
import pytest
import torch
from timm.layers import resize_rel_pos_bias_table
from timm.models.vision_transformer import VisionTransformer

from vitdet_bench.modeling import SimpleFeaturePyramid, build_vit
from vitdet_bench.modeling.backbone import (
    FPN,
    MultiScaleAdapter,
    geometric_offsets,
    global_block_indexes,
    resize_rel_pos_table,
    vit_preset,
)

from helpers.vit import randomize, tiny_vit


def feats(model, x):
    return model(x)[model.out_feature]


def test_presets_place_global_blocks_as_the_papers():
    assert global_block_indexes(12) == [2, 5, 8, 11]
    assert global_block_indexes(24) == [5, 11, 17, 23]
    assert global_block_indexes(32) == [7, 15, 23, 31]
    b = vit_preset("vit_b")
    assert b["window_size"] == 14 and b["window_block_indexes"] == [0, 1, 3, 4, 6, 7, 9, 10]
    assert vit_preset("vit_h14")["window_size"] == 16  # window = pre-training grid (224 / 14)
    # The window follows the patch size used, not the preset's (it was 14 here: 224 // 16).
    assert vit_preset("vit_b", patch_size=14)["window_size"] == 16
    assert vit_preset("vit_l", patch_size=8, pretrain_img_size=256)["window_size"] == 32
    assert vit_preset("vit_b", patch_size=14, window_size=7)["window_size"] == 7  # an explicit window wins
    with pytest.raises(ValueError, match="unknown ViT preset 'vit_x'.*vit_b"):
        vit_preset("vit_x")


@pytest.mark.parametrize(
    "arch,timm_args,published_m",
    [
        ("vit_b", dict(embed_dim=768, depth=12, num_heads=12), 86),
        ("vit_l", dict(embed_dim=1024, depth=24, num_heads=16), 304),
        ("vit_h14", dict(embed_dim=1280, depth=32, num_heads=16, patch_size=14), 632),
    ],
)
def test_param_counts_match_timm_and_published(arch, timm_args, published_m):
    with torch.device("meta"):
        ours = build_vit(arch, img_size=1024 if arch != "vit_h14" else 1022, use_rel_pos=False)
        ref = VisionTransformer(img_size=224, num_classes=0, **timm_args)
    n_ours = sum(p.numel() for p in ours.parameters())
    # The detection backbone is timm's encoder without the cls token and the final norm.
    n_ref = sum(p.numel() for n, p in ref.named_parameters() if n != "cls_token" and not n.startswith("norm."))
    assert n_ours == n_ref
    assert abs(n_ours / 1e6 - published_m) / published_m < 0.01


def test_window_covering_the_grid_equals_global_attention():
    x = torch.randn(2, 3, 96, 96)
    glob = randomize(tiny_vit()).eval()
    win = tiny_vit(window_size=6, window_block_indexes=[0, 1]).eval()
    win.load_state_dict(glob.state_dict())
    torch.testing.assert_close(feats(win, x), feats(glob, x), atol=1e-5, rtol=1e-5)


def test_padded_windows_mask_option():
    """A 6x6 grid in 4x4 windows pads 2 rows / cols. With the mask, the bottom-right window's 2x2
    real tokens see only each other: equal to global attention over that 2x2 crop alone."""
    torch.manual_seed(0)
    masked = randomize(tiny_vit(depth=1, window_size=4, window_block_indexes=[0], mask_window_padding=True,
                                use_abs_pos=False)).eval()
    blk = masked.blocks[0]
    tokens = torch.randn(1, 6, 6, 64)
    out = blk(tokens)
    assert out.shape == tokens.shape
    blk.window_size = 0  # the same weights as a global block, on the crop only
    ref = blk(tokens[:, 4:, 4:].contiguous())
    torch.testing.assert_close(out[:, 4:, 4:], ref, atol=1e-5, rtol=1e-5)
    blk.window_size, blk.mask_window_padding = 4, False  # Detectron2: padding tokens attend
    assert not torch.allclose(blk(tokens)[:, 4:, 4:], ref, atol=1e-3)


@pytest.mark.parametrize("rel", [dict(use_rel_pos=True), dict(rel_pos_bias="shared"), dict(rel_pos_bias="per_block")])
def test_sdpa_equals_explicit_attention(rel):
    x = torch.randn(2, 3, 80, 80)  # 5x5 grid: windows of 4 are padded
    common = dict(window_size=4, window_block_indexes=[0], mask_window_padding=True, **rel)
    sdpa = randomize(tiny_vit(**common)).eval()
    explicit = tiny_vit(use_sdpa=False, **common).eval()
    explicit.load_state_dict(sdpa.state_dict())
    torch.testing.assert_close(feats(sdpa, x), feats(explicit, x), atol=1e-5, rtol=1e-5)


def test_activation_checkpointing_gives_equal_gradients():
    x = torch.randn(2, 3, 96, 96)
    plain = randomize(tiny_vit(window_size=4, window_block_indexes=[0], rel_pos_bias="shared", use_rel_pos=True))
    ckpt = tiny_vit(window_size=4, window_block_indexes=[0], rel_pos_bias="shared", use_rel_pos=True,
                    use_act_checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    for m in (plain, ckpt):
        m.train()
        feats(m, x).square().mean().backward()
    for (n, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=n)


def test_frozen_patch_embed_and_layer_scale_names():
    m = tiny_vit(freeze_patch_embed=True, init_values=0.1, qv_bias=True)
    assert not any(p.requires_grad for p in m.patch_embed.parameters())
    names = set(dict(m.named_parameters()))
    assert {"blocks.0.ls1.gamma", "blocks.0.ls2.gamma", "blocks.0.attn.q_bias", "blocks.0.attn.v_bias"} <= names
    assert "blocks.0.attn.qkv.bias" not in names
    torch.testing.assert_close(m.blocks[0].ls1.gamma, torch.full((64,), 0.1))


def test_shared_tables_one_for_window_blocks_one_for_global():
    m = tiny_vit(depth=4, window_size=3, window_block_indexes=[0, 1, 2], rel_pos_bias="shared")
    tables = {n: tuple(p.shape) for n, p in m.named_parameters() if "relative_position_bias_table" in n}
    assert tables == {
        "rel_pos_bias_window.relative_position_bias_table": (5 * 5, 4),
        "rel_pos_bias_global.relative_position_bias_table": (11 * 11, 4),
    }
    assert "rel_pos_bias_window.relative_position_bias_table" in m.no_weight_decay()


@pytest.mark.parametrize("src,dst", [(14, 64), (7, 14), (14, 10), (4, 9)])
def test_rel_pos_table_resize_linear_equals_timm(src, dst):
    torch.manual_seed(src * dst)
    table = torch.randn((2 * src - 1) ** 2, 3)
    cls_rows = torch.randn(3, 3)
    ref = resize_rel_pos_bias_table(torch.cat([table, cls_rows]), (dst, dst), ((2 * dst - 1) ** 2 + 3, 3))
    ours = resize_rel_pos_table(table, (src, src), (dst, dst), mode="linear")
    torch.testing.assert_close(ours, ref[:-3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ref[-3:], cls_rows)  # timm keeps the cls rows; ours never has them


def test_rel_pos_table_resize_cubic_is_an_interpolating_bicubic_spline():
    """BEiT's interp2d(kind="cubic") fits an s=0 bicubic spline, which reproduces any polynomial of
    degree <= 3 per axis exactly, wherever the geometric source samples are placed."""
    src, dst = 7, 20
    ys = geometric_offsets(2 * src - 1, 2 * dst - 1)

    def poly(y, x, h):
        return 0.3 + 0.01 * h * y - 0.002 * x * x + 1e-4 * (y**3) * x + 1e-5 * h * x**3

    table = torch.tensor(
        np.stack([np.array([[poly(y, x, h) for x in ys] for y in ys]).reshape(-1) for h in range(2)], axis=1)
    )
    out = resize_rel_pos_table(table, (src, src), (dst, dst), mode="cubic")
    d = np.arange(-(dst - 1), dst, dtype=np.float64)
    expected = torch.tensor(np.stack([np.array([[poly(y, x, h) for x in d] for y in d]).reshape(-1)
                                      for h in range(2)], 1))
    # The outermost source sample sits within the bisection tolerance (1e-6) of the outermost
    # target offset; FITPACK clamps to its range there, so the border ring is exact only to ~1e-4.
    inner = torch.zeros(2 * dst - 1, 2 * dst - 1, dtype=torch.bool)
    inner[1:-1, 1:-1] = True
    inner = inner.reshape(-1)
    torch.testing.assert_close(out[inner], expected[inner], atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=1e-4)
    with pytest.raises(ValueError, match="window \\(7, 7\\) has 169 rows"):
        resize_rel_pos_table(table[:-1], (src, src), (dst, dst))


def test_simple_feature_pyramid_is_vitdet_shaped():
    net = tiny_vit(img_size=128)
    sfp = SimpleFeaturePyramid(net, out_channels=32, norm="LN", square_pad=128)
    out = sfp(torch.randn(2, 3, 128, 128))
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {
        "p2": (32, 32, 32), "p3": (32, 16, 16), "p4": (32, 8, 8), "p5": (32, 4, 4), "p6": (32, 2, 2)}
    # ViTDet's channel schedule before the 1x1 conv: D/4 at stride 4, D/2 at stride 8.
    assert sfp.stages[0][3].out_channels == 16 and sfp.stages[1][0].out_channels == 32
    # Convs followed by a norm carry no bias (Detectron2's Conv2d with norm).
    assert sfp.stages[0][4][0].bias is None


def test_single_scale_variant_gives_one_stride16_level():
    net = tiny_vit(img_size=128)
    neck = FPN(MultiScaleAdapter(net, in_features="last_feat", scale_factors=(1.0,)), out_channels=32,
               top_block=False, square_pad=128)
    out = neck(torch.randn(1, 3, 128, 128))
    assert list(out) == ["p4"] and tuple(out["p4"].shape) == (1, 32, 8, 8)


def test_adapter_taps_named_blocks():
    net = tiny_vit(depth=4, out_block_indexes=[0, 1, 2, 3])
    adapter = MultiScaleAdapter(net, in_features=["block0", "block1", "block2", "block3"])
    assert adapter.output_strides() == {"s4": 4, "s8": 8, "s16": 16, "s32": 32}
    with pytest.raises(ValueError, match="'block7' is not an output"):
        MultiScaleAdapter(net, in_features="block7")


def test_relative_position_gradients_are_bit_reproducible():
    # Advanced indexing's CPU backward (table[index]) accumulates repeated offsets in a
    # thread-dependent order; the lookups use index_select so identical runs stay identical.
    from vitdet_bench.modeling.backbone.rel_pos import relative_position_bias
    from vitdet_bench.modeling.backbone.utils import get_rel_pos

    torch.manual_seed(0)
    table = torch.randn(31 * 31, 3, requires_grad=True)
    rel = torch.randn(31, 8, requires_grad=True)
    g_bias = torch.randn(3, 256, 256)
    g_rel = torch.randn(16, 16, 8)
    grads = []
    for _ in range(5):
        table.grad = rel.grad = None
        relative_position_bias(table, (16, 16), (16, 16)).backward(g_bias)
        get_rel_pos(16, 16, rel).backward(g_rel)
        grads.append((table.grad.clone(), rel.grad.clone()))
    assert all(torch.equal(grads[0][0], t) and torch.equal(grads[0][1], r) for t, r in grads)
