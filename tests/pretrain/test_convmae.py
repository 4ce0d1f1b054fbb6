"""ConvMAE / FastConvMAE and the ConvViT: no leakage from masked pixels (exact zero gradients),
FastConvMAE's single pass against four ConvMAE passes, complementary masks against their
definition, block-wise masks and losses against hand computations, the decoder's token placement
against the released code's un-shuffle, stage strides / channels, the official ConvMAE checkpoint
layout (from models_convmae.py) and the bad inputs; then the demo configs through the engine:
losses fall, exports load into the demo detector, resume is exact."""

import argparse
import json
import os

import numpy as np
import pytest
import torch

from vitdet_bench.checkpoint import (
    CheckpointFormatError,
    load_backbone_checkpoint,
    safe_torch_load,
    save_backbone_export,
)
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.modeling import FPN, ConvViT, ViT, build_convvit
from vitdet_bench.pretrain import ConvMAE, FastConvMAE, build_convmae_encoder, complementary_views, patchify
from vitdet_bench.pretrain.convmae import upsample_visible, visible_map
from vitdet_bench.pretrain.engine import pretrain_main

from helpers import REPO
from helpers.official import official_convmae_base_state
from helpers.pretrain import pretrain_args, resumed_run_equals_one_run

TINY = dict(embed_dims=(8, 12, 16), depths=(1, 1, 2), num_heads=2)
DEMO_CONFIGS = {"convmae": "projects/ConvMAE/configs/convmae_convvit_tiny_demo.py",
                "fastconvmae": "projects/FastConvMAE/configs/fastconvmae_convvit_tiny_demo.py"}
DEMO_DETECTOR = "configs/demo/bench_convvit_tiny.py"
ITERS = 16
# A 64-image prefix of the demo pool and 8-image batches keep the runs short.
POOL = ["dataloader.train.dataset.size=64", "dataloader.train.total_batch_size=8"]


def _tiny(cls=ConvMAE, img_size=64, seed=0, **kwargs):
    torch.manual_seed(seed)
    enc = build_convmae_encoder(img_size=img_size, **TINY)
    return cls(enc, decoder_dim=16, decoder_depth=1, decoder_num_heads=2, **kwargs).eval()


def _randomize(model):
    # Non-trivial weights everywhere (zero biases / unit norms would hide a leak through them).
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)


def _patch_of_pixels(img_size, patch=16):
    """(H, W) map of the stage-3 token index of every pixel."""
    g = img_size // patch
    idx = torch.arange(g * g).reshape(g, g)
    return idx.repeat_interleave(patch, 0).repeat_interleave(patch, 1)


# --- the backbone ----------------------------------------------------------------------------------

def test_convvit_stage_outputs_have_the_documented_strides_and_channels():
    # ConvViT-B's shapes on the meta device (no memory, no compute).
    with torch.device("meta"):
        net = build_convvit("convvit_b", img_size=128, pretrain_img_size=224, window_size=4,
                            window_block_indexes=[1, 2, 4, 5, 7, 8, 9], rel_pos_bias="shared").eval()
        x = torch.empty(1, 3, 128, 96)
        out = net(x)
        levels = FPN(net, out_channels=32, norm="BN").eval()(x)
    # ConvMAE's detector: s0 256 ch at stride 4, s1 384 at 8, s2 768 at 16, s3 = maxpool(s2) at 32.
    assert net.output_channels() == {"s4": 256, "s8": 384, "s16": 768, "s32": 768}
    assert net.output_strides() == {"s4": 4, "s8": 8, "s16": 16, "s32": 32}
    for name, c in net.output_channels().items():
        s = net.output_strides()[name]
        assert tuple(out[name].shape) == (1, c, 128 // s, 96 // s), name
    # Global blocks 0, 3, 6, 10 (ConvViTDet's layout) and window 4 elsewhere.
    assert [i for i, b in enumerate(net.blocks3) if b.window_size == 0] == [0, 3, 6, 10]
    # The FPN takes the stages as they are: p2-p5 at strides 4-32, plus p6.
    assert list(levels) == ["p2", "p3", "p4", "p5", "p6"]
    assert [tuple(v.shape[-2:]) for v in levels.values()] == [(32, 24), (16, 12), (8, 6), (4, 3), (2, 2)]
    # s32 is a 2x2 max pool of s16 (real values, a small ConvViT).
    small = ConvViT(img_size=64, pretrain_img_size=64, **TINY).eval()
    with torch.no_grad():
        out = small(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(out["s32"], torch.nn.functional.max_pool2d(out["s16"], 2))


def test_convvit_layer_ids_and_no_weight_decay_follow_convmae_finetuning():
    net = ConvViT(img_size=64, pretrain_img_size=64, rel_pos_bias="shared", window_size=2,
                  window_block_indexes=[1], **TINY)
    # ConvMAE's util/lr_decay.py: embeddings, pos_embed and both conv stages are layer 0, stage-3
    # block i is i + 1, anything else depth + 1; depth = number of stage-3 blocks.
    assert net.num_layers == 2
    expected = {"patch_embed1.proj.weight": 0, "patch_embed4.weight": 0, "pos_embed": 0, "blocks1.0.attn.weight": 0,
                "blocks2.0.mlp.fc1.weight": 0, "blocks3.0.attn.qkv.weight": 1, "blocks3.1.norm2.bias": 2,
                "rel_pos_bias_global.relative_position_bias_table": 3}
    assert {k: net.layer_id(k) for k in expected} == expected
    assert net.no_weight_decay() == {"pos_embed", "rel_pos_bias_window.relative_position_bias_table",
                                     "rel_pos_bias_global.relative_position_bias_table"}


def test_blockwise_masks_are_the_stage3_mask_repeated_over_each_patch():
    grid = (3, 4)
    ids = torch.tensor([[0, 5, 11], [2, 3, 7]])
    vis = visible_map(ids, 12)
    assert vis.tolist() == [[1 if i in (0, 5, 11) else 0 for i in range(12)],
                            [1 if i in (2, 3, 7) else 0 for i in range(12)]]
    for f in (2, 4):
        up = upsample_visible(vis, grid, f)
        assert up.shape == (2, 1, 3 * f, 4 * f)
        for b in range(2):
            for i in range(3 * f):
                for j in range(4 * f):
                    assert up[b, 0, i, j] == vis[b, (i // f) * 4 + j // f]


# --- masking, leakage, equivalence -------------------------------------------------------------------

@pytest.mark.parametrize("cls", [ConvMAE, FastConvMAE])
def test_no_visible_output_depends_on_a_masked_pixel(cls):
    model = _tiny(cls)
    _randomize(model)
    images = torch.randn(2, 3, 64, 64, requires_grad=True)
    ids_keep = model.sample_views(2, torch.rand(2, 16))
    latent = model.encoder(images, ids_keep)  # (V * 2, L_keep, C)
    token_of_pixel = _patch_of_pixels(64)
    for v, ids in enumerate(ids_keep):
        for b in range(2):
            masked_pixels = ~torch.isin(token_of_pixel, ids[b])
            for t in range(ids.shape[1]):
                (grad,) = torch.autograd.grad(latent[v * 2 + b, t].sum(), images, retain_graph=True)
                # Exactly zero on every pixel of a masked patch (other views' patches included) and on
                # the other images; non-zero on the visible patches it attends to.
                assert torch.count_nonzero(grad[b][:, masked_pixels]) == 0, (v, b, t)
                assert torch.count_nonzero(grad[1 - b]) == 0
                assert torch.count_nonzero(grad[b][:, ~masked_pixels]) > 0


def test_without_masked_convolution_the_masked_pixels_would_leak():
    # The control for the test above: the same encoder with plain convolutions mixes masked pixels
    # into visible tokens, so a zero gradient there is the masking's doing.
    model = _tiny(ConvMAE)
    _randomize(model)
    images = torch.randn(1, 3, 64, 64, requires_grad=True)
    ids = model.sample_views(1, torch.rand(1, 16))[0]
    vit = model.encoder.convvit
    _, f2 = vit.forward_conv_stages(images)
    tokens = vit.stage3_tokens(f2).flatten(1, 2)[0, ids[0]]
    (grad,) = torch.autograd.grad(tokens.sum(), images)
    masked_pixels = ~torch.isin(_patch_of_pixels(64), ids[0])
    assert torch.count_nonzero(grad[0][:, masked_pixels]) > 0


def test_complementary_views_are_disjoint_and_cover_the_grid():
    model = _tiny(FastConvMAE, img_size=96)  # 36 tokens, 4 views of 9
    noise = torch.rand(3, 36)
    views = model.sample_views(3, noise)
    assert len(views) == 4 and all(v.shape == (3, 9) for v in views)
    for b in range(3):
        sets = [set(v[b].tolist()) for v in views]
        assert all(len(s) == 9 for s in sets)
        assert set().union(*sets) == set(range(36))
        assert sum(len(s) for s in sets) == 36  # pairwise disjoint
    # The masks the loss uses: each position visible in exactly one view, masked in the other three.
    _, _, mask = model.forward_loss_terms(torch.randn(3, 3, 96, 96), noise)
    per_view = mask.reshape(4, 3, 36)
    assert torch.equal((1 - per_view).sum(0), torch.ones(3, 36))
    assert mask.mean().item() == pytest.approx(0.75)
    # Views come from one shuffle per image: consecutive chunks of the argsort of the noise.
    order = torch.argsort(noise, dim=1)
    assert all(torch.equal(v, order[:, 9 * k: 9 * (k + 1)]) for k, v in enumerate(views))
    with pytest.raises(ValueError, match="divid"):
        complementary_views(order, 5)


def test_fastconvmae_single_pass_equals_four_convmae_passes():
    fast = _tiny(FastConvMAE, seed=1)
    _randomize(fast)
    conv = _tiny(ConvMAE, seed=2)
    conv.load_state_dict(fast.state_dict())  # same modules, same names: the same weights
    images = torch.randn(2, 3, 64, 64)
    noise = torch.rand(2, 16)
    with torch.no_grad():
        loss, pred, mask = fast.forward_loss_terms(images, noise)
        order = torch.argsort(noise, dim=1)
        losses = []
        for k in range(4):
            # A ConvMAE mask keeping exactly view k's tokens, in the same order: rank by the rolled shuffle.
            noise_k = torch.argsort(torch.roll(order, -4 * k, dims=1), dim=1).float()
            loss_k, pred_k, mask_k = conv.forward_loss_terms(images, noise_k)
            assert torch.equal(mask_k, mask[2 * k: 2 * k + 2])
            torch.testing.assert_close(pred_k, pred[2 * k: 2 * k + 2], atol=1e-5, rtol=1e-5)
            losses.append(loss_k)
    torch.testing.assert_close(loss, torch.stack(losses).mean(), atol=1e-6, rtol=1e-6)


def test_losses_equal_hand_computations_on_fixed_masks():
    images = torch.randn(2, 3, 64, 64)
    noise = torch.rand(2, 16)
    target = patchify(images, 16)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    # ConvMAE: per-patch MSE on norm-pix targets, mean over the 12 masked patches of each image.
    conv = _tiny(ConvMAE)
    with torch.no_grad():
        loss, pred, mask = conv.forward_loss_terms(images, noise)
    kept = torch.argsort(noise, dim=1)[:, :4]
    per_patch = ((pred - target) ** 2).mean(-1)
    hand = [per_patch[b, p] for b in range(2) for p in range(16) if p not in kept[b]]
    assert float(loss) == pytest.approx(float(torch.stack(hand).mean()), rel=1e-5)
    # FastConvMAE: every patch is reconstructed by the 3 views that mask it; the loss is the mean of
    # those 3 errors, averaged over all patches.
    fast = _tiny(FastConvMAE)
    with torch.no_grad():
        loss, pred, mask = fast.forward_loss_terms(images, noise)
    err = ((pred.reshape(4, 2, 16, -1) - target) ** 2).mean(-1)  # (view, image, patch)
    masked_in = mask.reshape(4, 2, 16)
    assert torch.equal(masked_in.sum(0), torch.full((2, 16), 3.0))
    hand = (err * masked_in).sum(0) / 3
    assert float(loss) == pytest.approx(float(hand.mean()), rel=1e-5)


def test_decoder_places_latents_as_the_released_unshuffle():
    # models_fastconvmae.py: cat(visible latents, mask tokens), roll view k by k * L_keep, then
    # gather with the shared ids_restore. Ours scatters the latents to their token positions.
    model = _tiny(FastConvMAE)
    _randomize(model)
    noise = torch.rand(2, 16)
    views = model.sample_views(2, noise)
    latent = torch.randn(8, 4, model.encoder.embed_dim)
    with torch.no_grad():
        ours = model.forward_decoder(latent, torch.cat(views))
        x = model.decoder_embed(latent)
        seq = torch.cat((x, model.mask_token.expand(8, 12, -1)), dim=1)
        seq = torch.cat([torch.roll(part, 4 * k, dims=1) for k, part in enumerate(seq.split(2))])
        ids_restore = torch.argsort(torch.argsort(noise, dim=1), dim=1).repeat(4, 1)
        x = torch.gather(seq, 1, ids_restore.unsqueeze(-1).expand(-1, -1, seq.shape[2])) + model.decoder_pos_embed
        for blk in model.decoder_blocks:
            x = blk(x)
        ref = model.decoder_pred(model.decoder_norm(x))
    torch.testing.assert_close(ours, ref)


# --- bad inputs ----------------------------------------------------------------------------------------

def test_image_sizes_that_are_not_multiples_of_16_fail_clearly():
    net = ConvViT(img_size=64, pretrain_img_size=64, **TINY)
    with pytest.raises(ValueError, match=r"multiples of 16.*\(1, 3, 72, 64\)"):
        net(torch.randn(1, 3, 72, 64))
    with pytest.raises(ValueError, match="img_size 1000 is not a multiple of the stage-3 stride 16"):
        ConvViT(img_size=1000, **TINY)
    with pytest.raises(ValueError, match="img_size 200 is not a multiple of the stage-3 stride 16"):
        build_convmae_encoder(img_size=200, **TINY)
    model = _tiny(ConvMAE)
    with pytest.raises(ValueError, match=r"multiples of 16"):
        model.forward_loss_terms(torch.randn(1, 3, 60, 64))
    with pytest.raises(ValueError, match=r"built for 64 px"):
        model.forward_loss_terms(torch.randn(1, 3, 96, 96))


def test_mask_ratios_that_leave_no_token_fail_clearly():
    enc = build_convmae_encoder(img_size=64, **TINY)
    with pytest.raises(ValueError, match=r"mask_ratio 0.95 leaves 0 of the 16 tokens of the 4x4 grid"):
        ConvMAE(enc, mask_ratio=0.95)
    with pytest.raises(ValueError, match=r"mask_ratio 1.0 leaves 0"):
        ConvMAE(enc, mask_ratio=1.0)
    with pytest.raises(ValueError, match=r"num_views=32 must .* divide the 16 tokens"):
        FastConvMAE(enc, num_views=32)
    with pytest.raises(ValueError, match=r"num_views=3"):
        FastConvMAE(enc, num_views=3)
    with pytest.raises(ValueError, match="set num_views instead"):
        FastConvMAE(enc, mask_ratio=0.5)


def test_a_vit_checkpoint_given_to_the_convvit_fails_and_changes_nothing(tmp_path):
    net = ConvViT(img_size=64, pretrain_img_size=64, **TINY)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    vit = ViT(img_size=64, patch_size=16, embed_dim=16, depth=2, num_heads=2, pretrain_img_size=64)
    # An MAE-style file (cls token, final norm, "model" container) and one of our ViT exports.
    mae_file = tmp_path / "mae_pretrain_vit.pth"
    state = {**vit.state_dict(), "cls_token": torch.zeros(1, 1, 16), "norm.weight": torch.ones(16),
             "norm.bias": torch.zeros(16)}
    torch.save({"model": state}, mae_file)
    with pytest.raises(CheckpointFormatError, match=r"mae_pretrain_vit\.pth: the file is a plain ViT checkpoint "
                                                    r"\(format 'mae'.*no convolution stages"):
        load_backbone_checkpoint(net, str(mae_file))
    export = tmp_path / "backbone_final.pth"
    save_backbone_export(vit.state_dict(), str(export), {"method": "mae", "arch": "vit_t"})
    with pytest.raises(CheckpointFormatError, match=r"backbone_final\.pth: this vitdet_bench export \(method 'mae'\)"):
        load_backbone_checkpoint(net, str(export))
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


# --- the official checkpoint layout ---------------------------------------------------------------------

def test_official_convmae_checkpoint_loads_with_its_pretraining_parts_dropped(tmp_path):
    state = official_convmae_base_state()
    path = tmp_path / "convmae_base.pth"
    # main_pretrain.py's misc.save_model container, argparse args included.
    torch.save({"model": state, "optimizer": {}, "epoch": 1599, "args": argparse.Namespace(model="convmae")}, path)
    net = build_convvit("convvit_b", img_size=256, pretrain_img_size=256, window_size=8,
                        window_block_indexes=[1, 2, 4, 5, 7, 8, 9], rel_pos_bias="shared")
    report = load_backbone_checkpoint(net, str(path))
    assert report.format == "convmae" and not report.unused and not report.missing_unexpected, report.summary()
    assert report.missing_expected == ["rel_pos_bias_window.relative_position_bias_table",
                                       "rel_pos_bias_global.relative_position_bias_table"]
    assert report.resized == [("pos_embed", (1, 196, 768), (1, 256, 768))]  # 14x14 -> 16x16 grid
    decoder = 2 + 1 + 1 + 2 + 2 + 8 * 12  # embed, mask token, positions, norm, pred, 8 blocks
    assert report.dropped == {"ConvMAE decoder (pre-training only)": decoder,
                              "ConvMAE multi-scale fusion into the decoder (pre-training only)": 4,
                              "final norm (the detector has none)": 2}
    assert len(report.loaded) == len(net.state_dict()) - 3
    own = net.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in report.loaded)
    # A DDP-saved state (module. prefix) reads the same.
    ddp = {"model": {f"module.{k}": v for k, v in state.items()}}
    assert load_backbone_checkpoint(net, ddp, source="ddp.pth").loaded == report.loaded


# --- the demo configs through the engine ----------------------------------------------------------------

@pytest.fixture(scope="module")
def convmae_runs(tmp_path_factory, demo_root):
    root = tmp_path_factory.mktemp("convmae")
    dirs = {}
    for name, config in DEMO_CONFIGS.items():
        out = str(root / name)
        pretrain_main(pretrain_args(config, [f"train.output_dir={out}", f"train.max_iter={ITERS}", "train.log_period=4",
                                     "lr_multiplier.warmup_iters=4", "train.checkpointer.period=8", *POOL]))
        dirs[name] = out
    return dirs


@pytest.mark.parametrize("name", list(DEMO_CONFIGS))
def test_each_method_loss_goes_down_on_the_demo_images(convmae_runs, name):
    with open(os.path.join(convmae_runs[name], "metrics.json")) as f:
        losses = [r[f"loss_{name}"] for r in map(json.loads, f) if f"loss_{name}" in r]
    assert len(losses) == ITERS // 4
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses


@pytest.mark.parametrize("name", list(DEMO_CONFIGS))
def test_export_loads_into_the_demo_convvit_detector_with_nothing_unexpected(convmae_runs, name):
    out = convmae_runs[name]
    assert os.path.isfile(os.path.join(out, "backbone_0000007.pth"))  # with the periodic checkpoint
    export = safe_torch_load(os.path.join(out, "backbone_final.pth"))
    meta = export["meta"]
    assert meta["method"] == name and meta["backbone"] == "convvit" and meta["iterations"] == ITERS
    assert meta["image_size"] == 128 and meta["embed_dims"] == [32, 48, 96] and meta["depths"] == [2, 2, 3]
    assert meta.get("num_views") == (4 if name == "fastconvmae" else None)
    cfg = LazyConfig.load(os.path.join(REPO, DEMO_DETECTOR))
    cfg.model.num_classes = 4
    detector = instantiate(cfg.model)
    report = load_backbone_checkpoint(detector, os.path.join(out, "backbone_final.pth"))
    assert report.ok and report.origin == name, report.summary()
    assert report.missing_expected == ["rel_pos_bias_window.relative_position_bias_table",
                                       "rel_pos_bias_global.relative_position_bias_table"]
    net = detector.backbone.bottom_up
    assert sorted(report.loaded) == sorted(export["model"]) == sorted(k for k in net.state_dict()
                                                                       if "relative_position" not in k)
    for k, v in export["model"].items():
        assert torch.equal(net.state_dict()[k], v), k
    # The detector trains from it: finite losses on two demo images.
    from vitdet_bench.data import DetectionDatasetMapper, get_detection_dataset

    records, _ = get_detection_dataset("demo_train")
    mapper = DetectionDatasetMapper(is_train=True, image_size=256)
    detector.train()
    losses = detector([mapper(r, seed=i) for i, r in enumerate(records[:2])])
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"}
    assert all(torch.isfinite(v) for v in losses.values())


def test_a_resumed_fastconvmae_run_equals_one_run(tmp_path, demo_root):
    config = DEMO_CONFIGS["fastconvmae"]  # the random views are drawn in the model: the RNG must resume too
    common = ["train.max_iter=4", "lr_multiplier.warmup_iters=1", "dataloader.train.dataset.size=16",
              "dataloader.train.total_batch_size=2", "train.log_period=2"]
    resumed_run_equals_one_run(config, common, tmp_path, period=2)


# --- configs at paper scale ---------------------------------------------------------------------------

def test_paper_recipes_carry_the_reference_numbers():
    convmae = LazyConfig.load(os.path.join(REPO, "projects/ConvMAE/configs/convmae_convvit_b_1600ep.py"))
    fast = LazyConfig.load(os.path.join(REPO, "projects/FastConvMAE/configs/fastconvmae_convvit_b_50ep.py"))
    for cfg, blr, batch, epochs, warmup in ((convmae, 1.5e-4, 2048, 1600, 40), (fast, 6e-4, 512, 50, 10)):
        assert cfg.optimizer.lr == pytest.approx(blr * batch / 256) and tuple(cfg.optimizer.betas) == (0.9, 0.95)
        assert cfg.optimizer.weight_decay == 0.05 and cfg.dataloader.train.total_batch_size == batch
        assert cfg.train.max_iter == round(epochs * 1281167 / batch)
        assert cfg.lr_multiplier.warmup_iters == round(warmup * 1281167 / batch)
        assert cfg.dataloader.train.mapper.transform.min_scale == 0.2 and cfg.model.norm_pix_loss
        # MAE's groups (timm add_weight_decay: no decay on 1-D parameters and biases) and lr_sched.py.
        groups = cfg.optimizer.params
        assert (groups.weight_decay_1d, groups.weight_decay_bias, groups.weight_decay_norm) == (0.0, 0.0, None)
        assert cfg.lr_multiplier.rescale_interval
        with torch.device("meta"):
            model = instantiate(cfg.model)
        assert (model.encoder.arch, model.decoder_blocks[0].mlp.fc1.in_features, len(model.decoder_blocks)) == (
            "convvit_b", 512, 8)
        assert model.mask_ratio == 0.75
    assert fast.model.num_views == 4
    det = LazyConfig.load(os.path.join(REPO, "configs/COCO/mask_rcnn_convvit_b_convmae_25ep.py"))
    net = det.model.backbone.bottom_up
    assert (det.optimizer.lr, det.optimizer.weight_decay, net.drop_path_rate) == (8e-5, 0.1, 0.1)
    assert det.dataloader.train.total_batch_size == 32 and det.train.max_iter == round(25 * 118000 / 32)
    assert net.window_size == 16 and net.rel_pos_bias == "shared" and net.freeze_pos_embed
    assert [i for i in range(11) if i not in net.window_block_indexes] == [0, 3, 6, 10]
    assert det.model.backbone.norm == "SyncBN" and det.train.amp.enabled
