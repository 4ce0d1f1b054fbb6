"""Feature-reconstruction MIM (EVA-style) and MAE-Lite against references: attention logits against
q k^T * scale by hand, fused and explicit attention against each other, the cosine and attention
losses against direct formulas, teachers against timm's VisionTransformer (CLIP via timm's own
open_clip conversion), the teacher seeing exactly the student's visible tokens, wrong teacher files
failing with the file named, and exact resume."""

import math
import os

import pytest
import torch
import torch.nn.functional as F
from timm.layers import resample_patch_embed
from timm.models.vision_transformer import VisionTransformer, _convert_openai_clip

from vitdet_bench.checkpoint import CheckpointError, CheckpointFormatError, safe_torch_load, save_backbone_export
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.modeling import ViT
from vitdet_bench.pretrain import (
    CLIP_PIXEL_MEAN,
    CLIP_PIXEL_STD,
    MAE,
    FeatureMIM,
    MAELite,
    MoCoV3,
    attention_distill_loss,
    build_pretrain_encoder,
    build_teacher,
    negative_cosine_loss,
)

from helpers import REPO
from helpers.pretrain import resumed_run_equals_one_run


def _randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial values everywhere (zero biases and unit norms would hide mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g) * 0.2
            p.copy_(1 + noise if name.endswith("norm1.weight") or name.endswith("norm2.weight") else noise)
    return module


def _hand_logits(x: torch.Tensor, attn) -> torch.Tensor:
    """q k^T * head_dim^-0.5 from the block's own qkv weights, for (B, N, C) normed tokens."""
    b, n, c = x.shape
    h = attn.num_heads
    if getattr(attn, "q_bias", None) is not None:
        bias = torch.cat((attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias))
    else:
        bias = attn.qkv.bias
    qkv = x @ attn.qkv.weight.t() + (bias if bias is not None else 0)
    q = qkv[..., :c].reshape(b, n, h, c // h).transpose(1, 2)
    k = qkv[..., c:2 * c].reshape(b, n, h, c // h).transpose(1, 2)
    return torch.einsum("bhid,bhjd->bhij", q, k) * (c // h) ** -0.5


# --- attention logits in the one ViT ---------------------------------------------------------

@pytest.mark.parametrize("qv_bias", [False, True])
def test_captured_logits_equal_q_k_scale_by_hand(qv_bias):
    torch.manual_seed(0)
    vit = _randomize(ViT(img_size=64, pretrain_img_size=64, patch_size=16, embed_dim=32, depth=3, num_heads=4,
                         qv_bias=qv_bias, window_size=2, window_block_indexes=[0], attn_logits_blocks=[-1])).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        vit(x)
        logits = vit.pop_attn_logits(2)
        # The last block's input, by running the ViT's pieces by hand.
        t = vit.patch_embed(x) + vit.pos_embed[:, 1:].reshape(1, 4, 4, 32)
        for blk in vit.blocks[:2]:
            t = blk(t)
        expected = _hand_logits(vit.blocks[2].norm1(t).flatten(1, 2), vit.blocks[2].attn)
    assert logits.shape == (2, 4, 16, 16)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    # Only the asked block left the fused kernel; the logits are released once read.
    assert [b.attn.capture_logits for b in vit.blocks] == [False, False, True]
    with pytest.raises(RuntimeError, match="no attention logits"):
        vit.pop_attn_logits(2)
    with pytest.raises(ValueError, match="out of range"):
        vit.capture_attn_logits([3])


def test_fused_and_logits_paths_give_equal_outputs_and_gradients():
    torch.manual_seed(0)
    fused = _randomize(ViT(img_size=64, patch_size=16, embed_dim=32, depth=3, num_heads=4, use_act_checkpoint=True))
    explicit = _randomize(ViT(img_size=64, patch_size=16, embed_dim=32, depth=3, num_heads=4, use_act_checkpoint=True,
                              attn_logits_blocks=[1, 2]))
    x = torch.randn(2, 3, 64, 64)
    out_f = fused(x)["last_feat"]
    out_e = explicit(x)["last_feat"]
    torch.testing.assert_close(out_e, out_f, rtol=1e-5, atol=1e-5)
    out_f.square().sum().backward()
    out_e.square().sum().backward()
    for (n, a), (_, b) in zip(fused.named_parameters(), explicit.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6 * float(a.grad.abs().max()), msg=n)
    # The captured logits carry gradient (they are a forward output, not recomputed).
    assert explicit.pop_attn_logits(-1).requires_grad


# --- losses against direct formulas -----------------------------------------------------------

def test_negative_cosine_loss_equals_the_direct_formula():
    pred = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 2.0], [3.0, 0.0, -4.0]])
    target = torch.tensor([[2.0, 1.0, 1.0], [-1.0, 0.0, 1.0], [3.0, 0.0, -4.0]])
    cos = []
    for p, t in zip(pred.tolist(), target.tolist()):
        dot = sum(a * b for a, b in zip(p, t))
        cos.append(dot / (math.sqrt(sum(a * a for a in p)) * math.sqrt(sum(b * b for b in t))))
    assert float(negative_cosine_loss(pred, target)) == pytest.approx(-sum(cos) / 3, rel=1e-6)
    assert float(negative_cosine_loss(target, target)) == pytest.approx(-1.0)
    # Invariant to the prediction's scale per row, as cosine is.
    scaled = pred * torch.tensor([[2.0], [0.1], [7.0]])
    assert float(negative_cosine_loss(scaled, target)) == pytest.approx(-sum(cos) / 3)
    with pytest.raises(ValueError, match="differ in shape"):
        negative_cosine_loss(pred, target[:2])


def test_attention_distill_loss_equals_mse_through_a_head_mixing_1x1_conv():
    torch.manual_seed(0)
    s, t = torch.randn(2, 6, 5, 5), torch.randn(2, 3, 5, 5)
    adapter = torch.nn.Conv2d(6, 3, 1, bias=False)
    mixed = torch.einsum("oh,bhij->boij", adapter.weight[:, :, 0, 0], s)
    with torch.no_grad():
        assert float(attention_distill_loss(s, t, adapter)) == pytest.approx(float(((mixed - t) ** 2).mean()), rel=1e-5)
    assert float(attention_distill_loss(t, t)) == 0.0
    with pytest.raises(ValueError, match="adapter"):
        attention_distill_loss(s, t)


# --- teachers against timm ----------------------------------------------------------------------

def _mae_export(path, width=32, depth=2, heads=2, img=64, seed=0, method=MAE) -> str:
    torch.manual_seed(seed)
    enc = build_pretrain_encoder("vit_t", img_size=img, embed_dim=width, depth=depth, num_heads=heads,
                                 pos_embed="sincos")
    if method is MAE:
        model = MAE(enc, decoder_dim=16, decoder_depth=1, decoder_num_heads=2)
    else:
        model = MoCoV3(enc, dim=8, mlp_dim=16)
    _randomize(model.encoder, seed)
    save_backbone_export(model.export_state(), str(path), model.export_meta())
    return str(path)


def _timm_reference(export_path: str, heads: int) -> VisionTransformer:
    """timm's ViT holding an export's weights (its cls token and final norm included)."""
    state = safe_torch_load(export_path)["model"]
    width, depth = state["pos_embed"].shape[-1], 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    img = int(math.isqrt(state["pos_embed"].shape[1] - 1)) * 16
    ref = VisionTransformer(img_size=img, patch_size=16, embed_dim=width, depth=depth, num_heads=heads, num_classes=0,
                            global_pool="").eval()
    ref.load_state_dict(state, strict=True)
    return ref


def test_export_teacher_features_equal_timm_for_the_same_weights(tmp_path):
    path = _mae_export(tmp_path / "mae.pth")
    teacher = build_teacher(path, image_size=64, patch_size=16)
    ref = _timm_reference(path, heads=2)
    raw = torch.rand(2, 3, 64, 64) * 255
    x = (raw - teacher.pixel_mean) / teacher.pixel_std
    with torch.no_grad():
        expected = ref.forward_features(x)[:, 1:]
    torch.testing.assert_close(teacher(raw).features, expected, rtol=1e-5, atol=1e-5)
    assert teacher.num_heads == 2 and teacher.info["method"] == "mae" and teacher.out_dim == 32
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training  # frozen in eval mode whatever the caller does


def _openclip_state(width=32, depth=2, patch=8, img=32, out=24, seed=0) -> dict:
    """A CLIP model's state dict in open_clip / OpenAI names (visual and a bit of the text tower)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.2  # noqa: E731
    n = (img // patch) ** 2
    sd = {"visual.class_embedding": r(width), "visual.positional_embedding": r(n + 1, width),
          "visual.conv1.weight": r(width, 3, patch, patch), "visual.ln_pre.weight": 1 + r(width),
          "visual.ln_pre.bias": r(width), "visual.ln_post.weight": 1 + r(width), "visual.ln_post.bias": r(width),
          "visual.proj": r(width, out), "token_embedding.weight": r(10, 16), "text_projection": r(16, out),
          "logit_scale": torch.tensor(4.6)}
    for i in range(depth):
        p = f"visual.transformer.resblocks.{i}."
        sd.update({p + "ln_1.weight": 1 + r(width), p + "ln_1.bias": r(width),
                   p + "attn.in_proj_weight": r(3 * width, width),
                   p + "attn.in_proj_bias": r(3 * width), p + "attn.out_proj.weight": r(width, width),
                   p + "attn.out_proj.bias": r(width), p + "ln_2.weight": 1 + r(width), p + "ln_2.bias": r(width),
                   p + "mlp.c_fc.weight": r(4 * width, width), p + "mlp.c_fc.bias": r(4 * width),
                   p + "mlp.c_proj.weight": r(width, 4 * width), p + "mlp.c_proj.bias": r(width)})
    return sd


def test_openclip_teacher_equals_timm_clip_with_timms_own_conversion(tmp_path):
    sd = _openclip_state()
    path = str(tmp_path / "open_clip_model.bin")
    torch.save(sd, path)
    # The reference: timm's CLIP ViT (pre-norm, QuickGELU, LayerNorm eps 1e-5) filled by timm's converter.
    ref = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=24,
                            pre_norm=True, act_layer="quick_gelu", norm_layer=torch.nn.LayerNorm).eval()
    ref.load_state_dict(_convert_openai_clip(sd, ref), strict=True)
    # The EVA config's teacher options, with this file's sizes.
    cfg = LazyConfig.load(os.path.join(REPO, "projects/EVA/configs/eva_vit_b_clip_l14_800ep.py"))
    cfg.teacher.update(path=path, image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                       checkpoint_patch_size=8)
    teacher = instantiate(cfg.teacher)
    raw = torch.rand(2, 3, 32, 32) * 255
    x = (raw - torch.tensor(CLIP_PIXEL_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_PIXEL_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = ref.head(ref.forward_features(x)[:, 1:])  # ln_post then proj, no cls (EVA's target)
    torch.testing.assert_close(teacher(raw).features, expected, rtol=1e-4, atol=1e-5)
    assert teacher.out_dim == 24 and teacher.info["format"] == "open_clip"
    # The same tower saved as timm's state dict (norm_pre, no patch bias, head = proj): the same teacher.
    torch.save(ref.state_dict(), str(tmp_path / "timm_clip.pth"))
    cfg.teacher.path = str(tmp_path / "timm_clip.pth")
    torch.testing.assert_close(instantiate(cfg.teacher)(raw).features, expected, rtol=1e-4, atol=1e-5)

    # Patch 8 -> 16 (EVA's 14 -> 16): the kernel is timm's resample_patch_embed of conv1, and the
    # teacher runs on the student's 16-px grid (64 px: the same 4 x 4 grid, positions unchanged).
    resampled = build_teacher(path, image_size=64, patch_size=16, act="quick_gelu", norm_eps=1e-5, num_heads=2)
    expected_kernel = resample_patch_embed(sd["visual.conv1.weight"], [16, 16], interpolation="bicubic", antialias=True)
    torch.testing.assert_close(resampled.vit.patch_embed.proj.weight, expected_kernel)
    assert torch.equal(resampled.vit.patch_embed.proj.bias, torch.zeros(32))
    assert resampled.proj is not None and resampled(torch.rand(1, 3, 64, 64) * 255).features.shape == (1, 16, 24)


# --- the methods ------------------------------------------------------------------------------

def test_feature_mim_targets_are_the_teachers_features_of_the_masked_patches(tmp_path):
    teacher = build_teacher(_mae_export(tmp_path / "t.pth"), image_size=64, patch_size=16)
    torch.manual_seed(0)
    student = build_pretrain_encoder("vit_t", img_size=64, embed_dim=24, depth=2, num_heads=4, qv_bias=True)
    model = FeatureMIM(student, teacher)
    raw = torch.rand(2, 3, 64, 64) * 255
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[0, :2, :2] = mask[1, 1:, 3] = True
    loss, pred, target = model.forward_terms(raw, mask)
    full = teacher(raw).features
    assert pred.shape == target.shape == (7, 32)
    expected = torch.cat([full[0, [0, 1, 4, 5]], full[1, [7, 11, 15]]])
    torch.testing.assert_close(target, expected)
    assert float(loss) == pytest.approx(float(-F.cosine_similarity(pred, target, dim=-1).mean()), rel=1e-6)
    loss.backward()
    assert model.lm_head.weight.grad is not None and model.mask_token.grad.abs().sum() > 0
    assert "teacher" not in dict(model.named_parameters())
    assert not any(k.startswith("teacher") for k in model.state_dict())
    meta = model.export_meta()
    assert meta["method_name"] == "feature-reconstruction MIM (teacher = MAE export)"
    assert meta["teacher"]["path"] == teacher.info["path"] and meta["teacher"]["out_dim"] == 32


def test_maelite_teacher_sees_exactly_the_students_visible_tokens(tmp_path):
    path = _mae_export(tmp_path / "t.pth")
    teacher = build_teacher(path, image_size=64, patch_size=16)
    torch.manual_seed(0)
    student = build_pretrain_encoder("vit_t", img_size=64, embed_dim=24, depth=2, num_heads=4, pos_embed="sincos")
    model = MAELite(student, teacher, decoder_dim=16, decoder_depth=1, decoder_num_heads=2, mask_ratio=0.75)
    raw = torch.rand(2, 3, 64, 64) * 255
    noise = torch.rand(2, 16)
    terms = model.forward_distill_terms(raw, noise)
    # The visible set is MAE's: the 4 patches with the smallest noise, in that order.
    ids_keep = torch.argsort(noise, dim=1)[:, :4]
    assert torch.equal(terms["ids_keep"], ids_keep)
    assert all(set(ids_keep[b].tolist()) == set(torch.nonzero(terms["mask"][b] == 0).flatten().tolist())
               for b in range(2))
    # The teacher's logits by hand from timm's ViT on [cls, visible patches] only.
    ref = _timm_reference(path, heads=2)
    x = (raw - teacher.pixel_mean) / teacher.pixel_std
    with torch.no_grad():
        tokens = ref.patch_embed(x) + ref.pos_embed[:, 1:]
        tokens = torch.stack([tokens[b, ids_keep[b]] for b in range(2)])
        tokens = torch.cat(((ref.cls_token + ref.pos_embed[:, :1]).expand(2, -1, -1), tokens), dim=1)
        tokens = ref.blocks[0](tokens)
        expected = _hand_logits(ref.blocks[1].norm1(tokens), ref.blocks[1].attn)
    torch.testing.assert_close(terms["teacher_logits"], expected, rtol=1e-5, atol=1e-5)
    # Nothing of the masked patches reaches the teacher: scramble them and nothing changes.
    scrambled = raw.clone()
    for b in range(2):
        for idx in torch.nonzero(terms["mask"][b]).flatten().tolist():
            r, c = divmod(idx, 4)
            scrambled[b, :, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] = torch.rand(3, 16, 16) * 255
    again = model.forward_distill_terms(scrambled, noise)
    torch.testing.assert_close(again["teacher_logits"], terms["teacher_logits"])
    # The loss: MSE of the 1x1-conv-mixed student logits (4 -> 2 heads) to the teacher's, weight 1.
    mixed = torch.einsum("oh,bhij->boij", model.attn_adapter.weight[:, :, 0, 0], terms["student_logits"])
    assert float(terms["loss_attn_distill"]) == pytest.approx(float(((mixed - expected) ** 2).mean()), rel=1e-5)
    # The student's pixel loss is MAE's, unchanged by the explicit attention of its last block.
    state = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("attn_adapter")}
    plain = MAE(build_pretrain_encoder("vit_t", img_size=64, embed_dim=24, depth=2, num_heads=4, pos_embed="sincos"),
                decoder_dim=16, decoder_depth=1, decoder_num_heads=2)
    plain.load_state_dict(state)
    assert not any(b.attn.capture_logits for b in plain.encoder.vit.blocks)
    loss_plain, _, _ = plain.forward_loss_terms(plain.normalize(raw), noise)
    assert float(terms["loss_mae"]) == pytest.approx(float(loss_plain), rel=1e-5)


def test_wrong_teacher_checkpoints_fail_naming_the_file(tmp_path):
    good = _mae_export(tmp_path / "teacher.pth")
    with pytest.raises(CheckpointError, match=r"teacher\.pth.*width \(embed_dim\) is 32, the config expects 64"):
        build_teacher(good, image_size=64, embed_dim=64)
    with pytest.raises(CheckpointError, match=r"teacher\.pth.*depth is 2, the config expects 3"):
        build_teacher(good, image_size=64, depth=3)
    with pytest.raises(CheckpointError, match=r"teacher\.pth.*patch size is 16, the config expects 14"):
        build_teacher(good, image_size=64, checkpoint_patch_size=14)
    with pytest.raises(CheckpointError, match=r"teacher\.pth.*heads.* is 2, the config expects 4"):
        build_teacher(good, image_size=64, num_heads=4)
    with pytest.raises(CheckpointError, match=r"teacher\.pth.*patch size is 16, the student's 8.*resample_patch_embed"):
        build_teacher(good, image_size=64, patch_size=8, resample_patch_embed=False)
    # Not a ViT: a detector-less random dict, a tokenizer-like conv net, a missing file.
    junk = str(tmp_path / "junk.pth")
    torch.save({"encoder.0.weight": torch.zeros(4, 3, 3, 3)}, junk)
    with pytest.raises(CheckpointFormatError, match=r"junk\.pth.*no ViT blocks"):
        build_teacher(junk)
    with pytest.raises(CheckpointError, match=r"missing\.pth does not exist"):
        build_teacher(str(tmp_path / "missing.pth"))
    # A ViT whose blocks are incomplete: the loader's report is not clean, so the teacher refuses it.
    state = safe_torch_load(good)
    del state["model"]["blocks.1.mlp.fc2.weight"]
    broken = str(tmp_path / "broken.pth")
    torch.save(state, broken)
    with pytest.raises(CheckpointError,
                       match=r"broken\.pth.*does not take this checkpoint whole.*blocks.1.mlp.fc2.weight"):
        build_teacher(broken, image_size=64)
    # BEiT-style relative position tables cannot run on a token subset.
    beit = {"model": {**{k: v for k, v in state["model"].items() if k != "pos_embed"},
                      "rel_pos_bias.relative_position_bias_table": torch.zeros(52, 2)}}
    torch.save(beit, str(tmp_path / "beit.pth"))
    with pytest.raises(CheckpointFormatError, match=r"beit\.pth.*relative position"):
        build_teacher(str(tmp_path / "beit.pth"), image_size=64)
    # A teacher at another grid, or without the cls token the student has, is refused by the method.
    student = build_pretrain_encoder("vit_t", img_size=64, embed_dim=24, depth=2, num_heads=4, pos_embed="sincos")
    with pytest.raises(ValueError, match=r"teacher\.pth.*grid 2.*grid 4"):
        MAELite(student, build_teacher(good, image_size=32), decoder_dim=16, decoder_depth=1, decoder_num_heads=2)
    no_cls = safe_torch_load(good)
    del no_cls["model"]["cls_token"]
    torch.save(no_cls, str(tmp_path / "no_cls.pth"))
    with pytest.raises(ValueError, match=r"no_cls\.pth.*cls tokens"):
        MAELite(student, build_teacher(str(tmp_path / "no_cls.pth"), image_size=64), decoder_dim=16, decoder_depth=1,
                decoder_num_heads=2)


# --- configs and resume --------------------------------------------------------------------------

def test_paper_configs_carry_the_recipes():
    eva = LazyConfig.load(os.path.join(REPO, "projects/EVA/configs/eva_vit_b_clip_l14_800ep.py"))
    assert (eva.optimizer.lr, tuple(eva.optimizer.betas), eva.optimizer.eps, eva.optimizer.weight_decay) == (
        1e-3, (0.9, 0.98), 1e-6, 0.05)
    assert eva.train.clip_grad.enabled and eva.train.clip_grad.max_norm == 3.0
    encoder = eva.model.encoder
    assert encoder.drop_path_rate == 0.1 and encoder.qv_bias and encoder.pos_embed == "learned"
    assert eva.dataloader.train.mapper.mask_generator.num_masking_patches == 80  # 105 / 256 of a 14 x 14 grid
    assert (eva.teacher.embed_dim, eva.teacher.depth, eva.teacher.checkpoint_patch_size, eva.teacher.act) == (
        1024, 24, 14, "quick_gelu")
    lite = LazyConfig.load(os.path.join(REPO, "projects/MAELite/configs/maelite_distill_vit_tiny_400ep.py"))
    assert lite.optimizer.lr == pytest.approx(1.5e-4 * 4096 / 256) and lite.optimizer.weight_decay == 0.05
    assert lite.lr_multiplier.warmup_iters == round(40 * 1281167 / 4096)
    assert lite.train.max_iter == round(400 * 1281167 / 4096)
    assert lite.dataloader.train.mapper.transform.min_scale == 0.08
    assert (lite.model.decoder_dim, lite.model.decoder_depth, lite.model.decoder_num_heads) == (96, 1, 3)
    assert lite.model.distill_weight == 1.0 and lite.model.student_block == -1
    with torch.device("meta"):
        for cfg, params in ((eva, 86e6), (lite, 5.5e6)):
            enc = instantiate(cfg.model.encoder)
            assert sum(p.numel() for p in enc.vit.parameters()) == pytest.approx(params, rel=0.02)
    assert enc.vit.blocks[0].attn.num_heads == 12 and enc.embed_dim == 192  # MAE-Lite's ViT-Tiny
    det = LazyConfig.load(os.path.join(REPO, "configs/COCO/mask_rcnn_vitdet_t_100ep.py"))
    net = det.model.backbone.net
    assert (net.embed_dim, net.num_heads, net.img_size, det.dataloader.train.mapper.image_size) == (192, 12, 640, 640)
    assert det.model.backbone.square_pad == 640 and det.dataloader.train.total_batch_size == 64
    assert det.train.max_iter == round(100 * 118000 / 64) and det.optimizer.weight_decay == 0.05


@pytest.mark.parametrize("config,teacher_kind", [("projects/EVA/configs/featrecon_vit_tiny_demo.py", MoCoV3),
                                                 ("projects/MAELite/configs/maelite_vit_tiny_demo.py", MAE)])
def test_a_resumed_run_equals_one_run(tmp_path, demo_root, config, teacher_kind):
    teacher = _mae_export(tmp_path / "teacher.pth", width=96, depth=4, heads=3, img=128, method=teacher_kind)
    common = ["train.max_iter=4", "lr_multiplier.warmup_iters=2", "dataloader.train.total_batch_size=4",
              "train.log_period=2", f"teacher.path={teacher}"]
    ea, _ = resumed_run_equals_one_run(config, common, tmp_path, period=2)
    twice_model = safe_torch_load(str(tmp_path / "twice" / "model_final.pth"))["model"]
    assert not any(k.startswith("teacher") for k in twice_model)
    assert ea["meta"]["method_name"].endswith("(teacher = MoCo v3 demo export)" if teacher_kind is MoCoV3
                                              else "(teacher = MAE demo export)")


def test_benchmark_files_add_the_seed_methods_with_teachers_from_earlier_steps():
    from vitdet_bench.benchmark import Runner, load_benchmark

    five = ["random", "supervised", "mocov3", "beit", "mae"]
    assert [i.name for i in load_benchmark(os.path.join(REPO, "configs/benchmark/demo.py")).inits] == five
    spec = load_benchmark(os.path.join(REPO, "configs/benchmark/demo_seeds.py"))
    # Issue 14's two inits, then issue 15's ConvViT three (tests/pretrain/test_convmae.py checks those).
    assert [i.name for i in spec.inits] == five + ["featrecon", "maelite", "random_convvit", "convmae", "fastconvmae"]
    runner = Runner(spec, progress=False)
    for init, teacher_config in (("featrecon", "mocov3_vit_tiny_demo.py"), ("maelite", "mae_vit_tiny_demo.py")):
        chain = next(i for i in spec.inits if i.name == init)
        assert chain.pretrain[0].config.endswith(teacher_config)
        opts = runner._step_overrides(chain, chain.pretrain[1])
        assert f"teacher.path={spec.pretrain_dir(init, 'teacher')}/backbone_final.pth" in opts
    coco = load_benchmark(os.path.join(REPO, "configs/benchmark/coco_seeds.py"))
    assert [i.name for i in coco.inits] == five + ["eva", "maelite", "convmae", "fastconvmae"]
    assert [i.name for i in load_benchmark(os.path.join(REPO, "configs/benchmark/coco_vit_t.py")).inits] == [
        "maelite", "maelite_distill"]
