"""Model pieces: window partition, pooler scales, optimizer groups, schedules, config models."""

import math
import os

import pytest
import torch

from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.modeling.backbone import ViT, window_partition, window_unpartition
from vitdet_bench.modeling.detector import LevelRoIAlign
from vitdet_bench.solver import WarmupParamScheduler, cosine_schedule, get_optimizer_params, step_schedule

from helpers import REPO


@pytest.mark.parametrize("hw", [(14, 14), (16, 20), (5, 9)])
def test_window_partition_round_trip(hw):
    x = torch.randn(2, *hw, 8)
    windows, pad = window_partition(x, 7)
    assert windows.shape[1:] == (7, 7, 8) and pad[0] % 7 == 0 and pad[1] % 7 == 0
    assert torch.equal(window_unpartition(windows, 7, pad, hw), x)


def test_level_roi_align_scales_do_not_depend_on_the_first_batch():
    pooler = LevelRoIAlign(["p2", "p3", "p4", "p5"], output_size=7)
    feats = {f"p{k}": torch.randn(1, 4, 256 >> k, 256 >> k) for k in range(2, 6)}
    box = [torch.tensor([[10.0, 10.0, 60.0, 60.0]])]
    a = pooler(feats, box, [(80, 80)])  # a small LSJ image padded to 256
    b = pooler(feats, box, [(256, 256)])
    assert pooler.scales == [0.25, 0.125, 0.0625, 0.03125]
    torch.testing.assert_close(a, b)


def test_param_groups_no_decay_and_layer_decay():
    model = torch.nn.Sequential(ViT(img_size=64, embed_dim=32, depth=3, num_heads=2), torch.nn.Linear(4, 4))
    groups = get_optimizer_params(model, layer_decay_rate=0.5)
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_param[id(named["0.pos_embed"])]["weight_decay"] == 0.0
    assert by_param[id(named["0.blocks.0.norm1.weight"])]["weight_decay"] == 0.0
    assert by_param[id(named["0.blocks.0.attn.qkv.bias"])]["weight_decay"] == 0.0
    assert "weight_decay" not in by_param[id(named["0.blocks.0.attn.qkv.weight"])]
    # decay ** (num_layers + 1 - layer_id): embeddings 0.5^4, block i 0.5^(3-i), heads 1.
    assert by_param[id(named["0.patch_embed.proj.weight"])]["lr_factor"] == 0.5**4
    assert by_param[id(named["0.blocks.2.mlp.fc1.weight"])]["lr_factor"] == 0.5
    assert by_param[id(named["1.weight"])]["lr_factor"] == 1.0


def test_param_group_rules_1d_and_overrides():
    vit = ViT(img_size=64, embed_dim=32, depth=1, num_heads=2, use_abs_pos=False, qv_bias=True, init_values=0.1,
              rel_pos_bias="shared")
    named = dict(vit.named_parameters())

    def wd_of(groups):
        by_param = {id(p): g.get("weight_decay", "default") for g in groups for p in g["params"]}
        return {n: by_param[id(p)] for n, p in named.items()}

    # Detection's default: norms, biases and no_weight_decay() names; gammas and q / v biases decay.
    wd = wd_of(get_optimizer_params(vit))
    assert wd["blocks.0.ls1.gamma"] == wd["blocks.0.attn.q_bias"] == "default"
    assert wd["rel_pos_bias_global.relative_position_bias_table"] == 0.0
    # timm's 1-D rule, the ViT's own list switched off, a table decayed by name and an lr factor.
    groups = get_optimizer_params(vit, weight_decay_norm=None, weight_decay_embed=None, weight_decay_1d=0.0,
                                  overrides={"blocks.0.attn.qkv.weight": {"weight_decay": 0.3, "lr_factor": 0.5},
                                             "pos_embed": {"weight_decay": 0.0}})
    wd = wd_of(groups)
    assert {n for n, v in wd.items() if v == 0.0} == {n for n, p in named.items() if p.ndim == 1}
    assert wd["rel_pos_bias_global.relative_position_bias_table"] == "default"
    assert wd["blocks.0.attn.qkv.weight"] == 0.3
    assert [g["lr_factor"] for g in groups if g.get("weight_decay") == 0.3] == [0.5]
    # A typo fails, naming the key; pos_embed of a ViT without one (above) is not a typo.
    with pytest.raises(ValueError, match=r"overrides names \['cls_tokn'\], which match no parameter of ViT"):
        get_optimizer_params(vit, overrides={"cls_tokn": {"weight_decay": 0.0}})
    with pytest.raises(ValueError, match=r"overrides\['pos_embed'\] has unknown keys \['lr'\]"):
        get_optimizer_params(vit, overrides={"pos_embed": {"lr": 0.1}})


def test_schedule_floor_and_rescaled_cosine():
    # BEiT / MAE / MoCo v3: the cosine runs over the iterations after the warm-up.
    sched = WarmupParamScheduler(cosine_schedule(min_lr=1e-5, base_lr=1e-3), warmup_iters=10, max_iter=110,
                                 warmup_factor=0.0, rescale_interval=True)
    assert sched(0.0) == 0.0 and sched(5 / 110) == pytest.approx(0.5)
    assert sched(10 / 110) == pytest.approx(1.0)
    assert sched(60 / 110) == pytest.approx(0.01 + 0.99 * 0.5)
    assert sched(1.0 - 1e-9) == pytest.approx(0.01, abs=1e-6)
    with pytest.raises(ValueError, match="needs the positive base_lr"):
        cosine_schedule(min_lr=1e-5)
    with pytest.raises(ValueError, match="end_value .* or min_lr"):
        cosine_schedule(end_value=0.1, min_lr=1e-5, base_lr=1e-3)


def test_schedules_follow_max_iter():
    sched = WarmupParamScheduler(cosine_schedule(), warmup_iters=10, max_iter=100, warmup_factor=0.001)
    assert sched(0.0) == pytest.approx(0.001 * 1.0)
    assert sched(0.1) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.1)))
    assert sched(0.5) == pytest.approx(0.5)
    step = WarmupParamScheduler(step_schedule(1000), warmup_iters=0, max_iter=1000)
    assert step(888 / 1000) == 1.0 and step(890 / 1000) == pytest.approx(0.1) and step(0.97) == pytest.approx(0.01)
    # A warm-up as long as the run (a short run keeping a recipe's warm-up) stays a warm-up to the end,
    # also with the cosine after it (fvcore divided by its empty interval at the last step).
    for rescale in (False, True):
        short = WarmupParamScheduler(cosine_schedule(), warmup_iters=20, max_iter=2, warmup_factor=0.0,
                                     rescale_interval=rescale)
        assert short(0.5) == pytest.approx(0.5 * (1.0 if rescale else cosine_schedule()(1.0)))
        assert short(1 - 1e-12) == pytest.approx(1.0 if rescale else 0.0, abs=1e-9)


def test_paper_model_config_instantiates_with_the_paper_sizes():
    cfg = LazyConfig.load(os.path.join(REPO, "configs", "common", "models", "mask_rcnn_vit.py"))
    model = instantiate(cfg.model)
    vit = model.backbone.bottom_up.net
    vit_params = sum(p.numel() for p in vit.parameters())
    assert 85.5e6 < vit_params < 86.5e6  # ViT-B without cls token / head
    assert [i for i, b in enumerate(vit.blocks) if b.window_size == 0] == [2, 5, 8, 11]
    assert model.backbone.square_pad == 1024


def test_demo_model_eval_output_contract(demo_root):
    from vitdet_bench.data import DetectionDatasetMapper, get_detection_dataset

    cfg = LazyConfig.load(os.path.join(REPO, "configs", "demo", "mask_rcnn_vit_tiny.py"))
    cfg.model.num_classes = 4
    model = instantiate(cfg.model).eval()
    records, _ = get_detection_dataset("demo_val")
    inp = DetectionDatasetMapper(is_train=False, image_size=256)(records[0])
    with torch.no_grad():
        (out,) = model([inp])
    h, w = records[0]["height"], records[0]["width"]
    assert out["masks"].shape[1:] == (h, w) and out["masks"].dtype == torch.bool
    assert (out["boxes"][:, 2] <= w).all() and (out["boxes"][:, 3] <= h).all()
    assert ((out["labels"] >= 0) & (out["labels"] < 4)).all()
    assert torch.all(out["scores"][:-1] >= out["scores"][1:])


@pytest.mark.parametrize(
    "config,params_m",
    [
        ("mask_rcnn_vitdet.py", 111),  # ViTDet paper, Table 5: ViT-B Mask R-CNN 111M
        ("mask_rcnn_vit_single_scale.py", None),
    ],
)
def test_neck_variant_configs_build_train_and_infer(config, params_m, demo_root):
    """Each neck variant at paper size (param count), then shrunk to CPU size for one train
    step and one inference pass on a demo image."""
    from vitdet_bench.data import DetectionDatasetMapper, get_detection_dataset

    path = os.path.join(REPO, "configs", "common", "models", config)
    if params_m:
        model = instantiate(LazyConfig.load(path).model)
        assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - params_m) / params_m < 0.01
    cfg = LazyConfig.load(path)
    net = cfg.model.backbone.get("net") or cfg.model.backbone.bottom_up.net
    net.update(img_size=128, embed_dim=64, depth=4, num_heads=4, window_size=4, window_block_indexes=[0, 2],
               drop_path_rate=0.0)
    cfg.model.backbone.square_pad = 128
    cfg.model.backbone.out_channels = 32
    cfg.model.num_classes = 4
    cfg.model.roi_heads.batch_size_per_image = 32
    for head in (cfg.model.roi_heads.box_head, cfg.model.roi_heads.mask_head):
        head.conv_dims = [32, 32]
    cfg.model.roi_heads.box_head.fc_dims = [64]
    cfg.model.roi_heads.box_predictor.in_channels = 64
    cfg.model.roi_heads.mask_predictor.update(in_channels=32, dim_reduced=32)
    model = instantiate(cfg.model)
    records, _ = get_detection_dataset("demo_train")
    batch = [DetectionDatasetMapper(is_train=True, image_size=128)(records[i]) for i in range(2)]
    losses = model(batch)
    assert {"loss_rpn_cls", "loss_box_reg", "loss_mask"} <= set(losses)
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        (out,) = model([DetectionDatasetMapper(is_train=False, image_size=128)(records[0])])
    assert out["boxes"].shape[1] == 4
