"""Pre-training companion: masks, losses and momentum against hand computations, the encoder
against timm, every method's loss falling on the demo images, export -> detector load with
nothing unexpected missing, and exact resume."""

import json
import math
import os

import numpy as np
import pytest
import torch

from vitdet_bench.checkpoint import load_backbone_checkpoint, safe_torch_load
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.pretrain import (
    MAE,
    BlockMaskGenerator,
    MoCoV3,
    build_pretrain_encoder,
    build_tokenizer,
    contrastive_loss,
    demo_pool_dataset,
    detection_image_dataset,
    mae_loss,
    momentum_at,
    patchify,
    random_masking,
)
from vitdet_bench.pretrain.engine import pretrain_main

from helpers import REPO
from helpers.pretrain import pretrain_args, resumed_run_equals_one_run

DEMO_CONFIGS = {
    "tokenizer": "projects/BEiT/configs/tokenizer_vq_demo.py",
    "mae": "projects/MAE/configs/mae_vit_tiny_demo.py",
    "mocov3": "projects/MoCoV3/configs/mocov3_vit_tiny_demo.py",
    "beit": "projects/BEiT/configs/beit_vit_tiny_demo.py",
    "supervised": "projects/Supervised/configs/supervised_vit_tiny_demo.py",
    # The seed methods, each with an earlier run's export as its frozen teacher.
    "feature_mim": "projects/EVA/configs/featrecon_vit_tiny_demo.py",
    "maelite": "projects/MAELite/configs/maelite_vit_tiny_demo.py",
}
TEACHERS = {"feature_mim": "mocov3", "maelite": "mae"}
ITERS = 30
# A 128-image prefix of the demo pool and 16-image batches keep the runs short.
POOL = ["dataloader.train.dataset.size=128", "dataloader.train.total_batch_size=16"]


def _losses(output_dir: str, key: str) -> list[float]:
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [r[key] for r in map(json.loads, f) if key in r]


@pytest.fixture(scope="module")
def pretrain_runs(tmp_path_factory, demo_root):
    """Each demo config for ITERS iterations (the tokenizer first: BEiT needs it)."""
    root = tmp_path_factory.mktemp("pretrain")
    dirs = {}
    for name, config in DEMO_CONFIGS.items():
        out = str(root / name)
        opts = [f"train.output_dir={out}", f"train.max_iter={ITERS}", "train.log_period=5",
                "lr_multiplier.warmup_iters=5", "train.checkpointer.period=15", *POOL]
        if name == "beit":
            opts.append(f"tokenizer.path={dirs['tokenizer']}/tokenizer_final.pth")
        if name in TEACHERS:
            opts.append(f"teacher.path={dirs[TEACHERS[name]]}/backbone_final.pth")
        pretrain_main(pretrain_args(config, opts), product="tokenizer" if name == "tokenizer" else "backbone")
        dirs[name] = out
    return dirs


# --- masks and losses against hand computations ----------------------------------------------

def test_mae_mask_keeps_exactly_a_quarter_per_sample():
    x = torch.randn(5, 196, 8)
    visible, mask, ids_restore = random_masking(x, 0.75)
    assert visible.shape == (5, 49, 8)
    assert (mask.sum(1) == 147).all() and set(mask.unique().tolist()) == {0.0, 1.0}
    for i in range(5):
        kept = torch.nonzero(mask[i] == 0).flatten()
        # The visible tokens are exactly the unmasked ones (as a set), each unchanged.
        assert sorted(visible[i].sum(1).tolist()) == pytest.approx(sorted(x[i, kept].sum(1).tolist()), abs=1e-5)
    # Masks differ between samples.
    assert len({tuple(m.tolist()) for m in mask}) == 5
    # ids_restore un-shuffles [visible, removed] back to the original order.
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    shuffled = torch.gather(x, 1, ids_shuffle.unsqueeze(-1).expand(-1, -1, 8))
    assert torch.equal(torch.gather(shuffled, 1, ids_restore.unsqueeze(-1).expand(-1, -1, 8)), x)


def test_mae_loss_equals_a_hand_computation_on_a_fixed_mask():
    torch.manual_seed(0)
    encoder = build_pretrain_encoder("vit_t", img_size=32, embed_dim=32, depth=1, num_heads=2, pos_embed="sincos")
    model = MAE(encoder, decoder_dim=16, decoder_depth=1, decoder_num_heads=2)
    images = torch.randn(2, 3, 32, 32)
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.7, 0.05]])
    loss, pred, mask = model.forward_loss_terms(images, noise)
    # 4 patches, keep int(4 * 0.25) = 1: the smallest noise.
    assert mask.tolist() == [[1, 0, 1, 1], [1, 1, 1, 0]]
    total, count = 0.0, 0
    for b in range(2):
        for idx in range(4):
            if mask[b, idx] == 0:
                continue
            r, c = divmod(idx, 2)
            patch = images[b, :, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16].permute(1, 2, 0).reshape(-1)  # h, w, c
            target = (patch - patch.mean()) / math.sqrt(patch.var().item() + 1e-6)
            total += float(((pred[b, idx].detach() - target) ** 2).mean())
            count += 1
    assert float(loss.detach()) == pytest.approx(total / count, rel=1e-5)
    unnormalised = float(mae_loss(patchify(images, 16), pred.detach(), mask, norm_pix_loss=False))
    assert unnormalised != pytest.approx(float(loss.detach()))


def test_encoder_equals_timm_vit_for_the_same_weights():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    ref = VisionTransformer(img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2, num_classes=0).eval()
    enc = build_pretrain_encoder("vit_t", img_size=64, embed_dim=64, depth=2, num_heads=2).eval()
    state = {}
    for k, v in ref.state_dict().items():
        state[k if k in ("cls_token",) or k.startswith("norm.") else f"vit.{k}"] = v
    missing, unexpected = enc.load_state_dict(state, strict=False)
    assert not unexpected and not missing
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(enc(x), ref.forward_features(x), atol=1e-5)


def test_moco_momentum_update_and_loss_equal_hand_computations():
    torch.manual_seed(0)
    encoder = build_pretrain_encoder("vit_t", img_size=32, embed_dim=32, depth=1, num_heads=2, pos_embed="sincos",
                                     freeze_patch_embed=True)
    model = MoCoV3(encoder, dim=8, mlp_dim=16)
    for p in model.momentum_encoder.parameters():
        p.data.normal_()
    before_q = [p.detach().clone() for p in list(model.encoder.parameters()) + list(model.projector.parameters())]
    before_k = [p.detach().clone()
                for p in list(model.momentum_encoder.parameters()) + list(model.momentum_projector.parameters())]
    model.update_momentum_encoder(0.9)
    after_k = list(model.momentum_encoder.parameters()) + list(model.momentum_projector.parameters())
    for q, k0, k1 in zip(before_q, before_k, after_k):
        assert torch.allclose(k1, 0.9 * k0 + 0.1 * q, atol=1e-6)
    # m_t = 1 - (1 + cos(pi t / T)) / 2 * (1 - m0)
    assert momentum_at(0.0, 0.99) == pytest.approx(0.99)
    assert momentum_at(0.5, 0.99) == pytest.approx(0.995)
    assert momentum_at(1.0, 0.99) == pytest.approx(1.0)
    model.set_progress(50, 100)
    assert model.momentum == pytest.approx(0.995)
    # InfoNCE x 2 tau, by hand.
    q, k, tau = torch.randn(4, 8), torch.randn(4, 8), 0.2
    qn, kn = q / q.norm(dim=1, keepdim=True), k / k.norm(dim=1, keepdim=True)
    expected = 0.0
    for i in range(4):
        logits = [float(qn[i] @ kn[j]) / tau for j in range(4)]
        expected += -(logits[i] - math.log(sum(math.exp(v) for v in logits)))
    assert float(contrastive_loss(q, k, tau)) == pytest.approx(expected / 4 * 2 * tau, rel=1e-5)


def test_beit_block_masks_have_the_configured_ratio_and_block_sizes():
    gen = BlockMaskGenerator(14, num_masking_patches=75, min_num_patches=16)
    rng = np.random.default_rng(0)
    counts = [int(gen(rng).sum()) for _ in range(300)]
    assert max(counts) <= 75
    # BEiT's generator stops when a round adds nothing, so it sometimes ends a patch or two short.
    assert 74 < np.mean(counts) <= 75 and np.mean([c == 75 for c in counts]) > 0.5  # 38% of 196
    # Masks are reproducible from the seed and differ between seeds.
    assert np.array_equal(gen(np.random.default_rng(3)), gen(np.random.default_rng(3)))
    assert not np.array_equal(gen(np.random.default_rng(3)), gen(np.random.default_rng(4)))
    # Blocks: the mask is their union; each block's area is drawn in [min_num_patches, what is
    # left of the quota] (then rounded to h x w), its aspect ratio in [0.3, 1 / 0.3].
    for s in range(50):
        m, blocks = gen(np.random.default_rng(s), return_blocks=True)
        union = np.zeros_like(m)
        remaining = 75
        for top, left, h, w in blocks:
            union[top:top + h, left:left + w] = 1
            lo = min(16, remaining)
            assert h * w >= 0.6 * lo, (h, w, lo)  # rounding sqrt(area * aspect) loses at most this
            assert 0.3 * 0.5 <= h / w <= 2 / 0.3
            remaining = 75 - int(union.sum())
        assert np.array_equal(union, m)
        assert blocks[0][2] * blocks[0][3] <= 75
    with pytest.raises(ValueError, match="num_masking_patches"):
        BlockMaskGenerator(8, num_masking_patches=65)


def test_supervised_demo_labels_are_the_largest_objects_category(demo_root):
    from vitdet_bench.data.catalog import load_dataset
    from vitdet_bench.data.demo_pool import draw_pool_image
    from vitdet_bench.data.mapper import read_image

    # Detection images as pre-training data: the category of the largest annotated object.
    records, meta = detection_image_dataset("demo_minival")
    det_records, _ = load_dataset("demo_minival")
    assert meta.num_classes == 4 and len(records) == len(det_records)
    for rec, det in zip(records, det_records):
        areas = [a["bbox"][2] * a["bbox"][3] for a in det["annotations"]]
        assert rec["label"] == det["annotations"][int(np.argmax(areas))]["category_id"]
    # The demo pool (what the supervised demo init trains on): each image's dominant shape's class,
    # read back from the memory-mapped pool; the same rows without labels for the other methods.
    pool, pool_meta = demo_pool_dataset(size=40, labels=True)
    plain, _ = demo_pool_dataset(size=40)
    assert pool_meta.classes == meta.classes == ("circle", "square", "triangle", "star")
    for i, (rec, unlabelled) in enumerate(zip(pool, plain)):
        drawn = draw_pool_image(0, "pool", i)
        assert rec["label"] == drawn.classes[0]
        assert read_image(rec).shape == drawn.image.shape
        assert np.array_equal(read_image(rec), drawn.image)
        assert unlabelled["label"] == -1 and unlabelled["array_index"] == rec["array_index"] == i


def test_tokenizer_errors_say_what_is_needed(tmp_path):
    with pytest.raises(FileNotFoundError, match="tools/train_tokenizer.py"):
        build_tokenizer("vq", str(tmp_path / "missing.pth"))
    with pytest.raises((ImportError, FileNotFoundError), match="DALL-E|encoder.pkl"):
        build_tokenizer("dalle", str(tmp_path / "encoder.pkl"))
    with pytest.raises(ValueError, match="'vq' or 'dalle'"):
        build_tokenizer("clip", "")


# --- training through the engine -------------------------------------------------------------

@pytest.mark.parametrize("name,key", [("tokenizer", "loss_recon"), ("mae", "loss_mae"), ("mocov3", "loss_moco"),
                                      ("beit", "loss_beit"), ("supervised", "loss_cls"),
                                      ("feature_mim", "loss_feature_mim"), ("maelite", "loss_mae"),
                                      ("maelite", "loss_attn_distill")])
def test_each_method_loss_goes_down_on_the_demo_images(pretrain_runs, name, key):
    losses = _losses(pretrain_runs[name], key)
    assert len(losses) == ITERS // 5
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses


@pytest.mark.parametrize("method", ["mae", "mocov3", "beit", "supervised", "feature_mim", "maelite"])
def test_export_loads_into_the_bench_detector_with_nothing_unexpected(pretrain_runs, method):
    out = pretrain_runs[method]
    assert os.path.isfile(os.path.join(out, "backbone_0000014.pth"))  # with the periodic checkpoint
    export = safe_torch_load(os.path.join(out, "backbone_final.pth"))
    meta = export["meta"]
    assert meta["method"] == method and meta["iterations"] == ITERS and meta["image_size"] == 128
    assert meta["patch_size"] == 16 and meta["epochs"] == pytest.approx(ITERS * 16 / 128, abs=1e-3)
    assert meta["data"]["num_images"] == 128 and meta["data"]["size"] == 128
    assert meta["data"]["labels"] == (method == "supervised")

    cfg = LazyConfig.load(os.path.join(REPO, "configs/demo/bench_vit_tiny.py"))
    cfg.model.num_classes = 4
    if method == "beit":  # BEiT's block design, as configs/COCO/*_beit_*.py
        cfg.model.backbone.bottom_up.net.init_values = 0.1
        cfg.model.backbone.bottom_up.net.qv_bias = True
    if method == "maelite":  # MAE-Lite's head width (configs/demo/bench/maelite.py)
        cfg.model.backbone.bottom_up.net.num_heads = 6
    detector = instantiate(cfg.model)
    report = load_backbone_checkpoint(detector, os.path.join(out, "backbone_final.pth"))
    assert report.ok and not report.missing_unexpected and not report.unused, report.summary()
    # The exported tensors arrive unchanged (apart from the global table, resized to the grid).
    vit = detector.backbone.bottom_up.net
    for k, v in export["model"].items():
        if k in vit.state_dict():
            assert torch.equal(vit.state_dict()[k], v), k
    if method == "beit":
        assert report.missing_expected == ["pos_embed"]
        assert [k for k, _, _ in report.resized] == ["rel_pos_bias_global.relative_position_bias_table"]
        # The export has BEiT's layout (8 x 8 grid: 15 * 15 offsets + 3 cls rows, learned); the
        # detector has no cls token, drops the rows and says so.
        table = export["model"]["rel_pos_bias.relative_position_bias_table"]
        assert table.shape == (15 * 15 + 3, 3) and table[-3:].abs().min() > 0
        assert sorted(k for k, how in report.converted if "3 cls rows" in how and "dropped" in how) == [
            "rel_pos_bias_global.relative_position_bias_table", "rel_pos_bias_window.relative_position_bias_table"]
    else:
        assert all("relative_position_bias_table" in k for k in report.missing_expected)


def test_a_resumed_pretraining_run_equals_one_run(tmp_path, demo_root):
    config = DEMO_CONFIGS["mocov3"]  # the most state: momentum encoder, BN statistics, two views
    common = ["train.max_iter=8", "lr_multiplier.warmup_iters=2", "dataloader.train.total_batch_size=4",
              "train.log_period=2", "dataloader.train.dataset.size=64"]
    resumed_run_equals_one_run(config, common, tmp_path, period=4)


def test_pretrain_configs_at_paper_scale_build(monkeypatch):
    # The paper-size models build (on the meta device) with the published widths.
    from vitdet_bench.config import LazyConfig

    sizes = {}
    for path in ("projects/MAE/configs/mae_vit_b_800ep.py", "projects/MoCoV3/configs/mocov3_vit_b_300ep.py",
                 "projects/Supervised/configs/deit_vit_b_300ep.py", "projects/MAE/configs/mae_vit_l_800ep.py"):
        cfg = LazyConfig.load(os.path.join(REPO, path))
        with torch.device("meta"):
            model = instantiate(cfg.model)
        sizes[path] = sum(p.numel() for p in model.encoder.vit.parameters())
        assert cfg.train.max_iter > 0 and cfg.optimizer.lr > 0
    assert sizes["projects/MAE/configs/mae_vit_b_800ep.py"] == pytest.approx(86e6, rel=0.01)
    assert sizes["projects/MAE/configs/mae_vit_l_800ep.py"] == pytest.approx(304e6, rel=0.01)
    mae = LazyConfig.load(os.path.join(REPO, "projects/MAE/configs/mae_vit_b_800ep.py"))
    assert mae.optimizer.lr == pytest.approx(1.5e-4 * 4096 / 256) and tuple(mae.optimizer.betas) == (0.9, 0.95)
    assert mae.train.max_iter == round(800 * 1281167 / 4096)
    beit = LazyConfig.load(os.path.join(REPO, "projects/BEiT/configs/beit_vit_b_800ep.py"))
    assert beit.model.encoder.rel_pos_bias == "shared" and beit.model.encoder.init_values == 0.1
    assert beit.dataloader.train.mapper.mask_generator.num_masking_patches == 75


@pytest.mark.parametrize("path,warmup_epochs,epochs", [("projects/MAE/configs/mae_vit_b_800ep.py", 40, 800),
                                                        ("projects/MoCoV3/configs/mocov3_vit_b_300ep.py", 40, 300)])
def test_mae_and_moco_schedules_equal_the_official_formula(path, warmup_epochs, epochs):
    """MAE's util/lr_sched.py and MoCo v3's adjust_learning_rate: lr * e / warm-up during the warm-up,
    then lr * 0.5 * (1 + cos(pi * (e - warm-up) / (epochs - warm-up))) (per iteration here)."""
    from vitdet_bench.config import LazyConfig

    cfg = LazyConfig.load(os.path.join(REPO, path))
    sched = instantiate(cfg.lr_multiplier)
    n = cfg.train.max_iter
    warm = cfg.lr_multiplier.warmup_iters
    assert warm == pytest.approx(n * warmup_epochs / epochs, abs=1)
    for it in (warm // 2, warm, warm + (n - warm) // 3, (warm + n) // 2, n - 1):
        e, w = it / n * epochs, warmup_epochs
        official = e / w if e < w else 0.5 * (1 + math.cos(math.pi * (e - w) / (epochs - w)))
        assert sched(it / n) == pytest.approx(official, abs=2e-3), it


def test_vq_tokenizer_restarts_dead_codes_from_encoder_outputs():
    from vitdet_bench.pretrain import VQTokenizer

    torch.manual_seed(0)
    tok = VQTokenizer(patch_size=16, vocab_size=32, code_dim=8, hidden_dim=16).train()
    images = torch.rand(2, 3, 64, 64) * 255
    tok(images)  # initialises the codebook from this batch
    used = set(tok.get_codebook_indices(images).flatten().tolist())
    idle = torch.tensor([c for c in range(32) if c not in used][:4])
    tok.usage[idle] = 0.0  # these codes have not been used for a long time, nor are they now
    before = tok.codebook.weight.detach().clone()
    tok(images)
    restarted = (tok.codebook.weight - before).abs().sum(1) > 0
    assert restarted[idle].all()
    assert not restarted[torch.tensor(sorted(used))].any()  # codes in use stay
    z = tok._encode(images).permute(0, 2, 3, 1).reshape(-1, 8)
    # Each restarted code is one of the batch's (normalised) encodings plus 0.01 noise.
    dist = torch.cdist(tok.codebook.weight[idle].detach(), z).min(dim=1).values
    assert (dist < 0.1).all()
    ids = tok.get_codebook_indices(images)
    assert ids.shape == (2, 4, 4) and ids.dtype == torch.long and int(ids.max()) < 32
