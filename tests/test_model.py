"""Model pieces: window partition, pooler scales, optimizer groups, schedules, config models."""

import math
import os

import pytest
import torch

from conftest import REPO
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.modeling.backbone import ViT, global_block_indexes, window_partition, window_unpartition
from vitdet_bench.modeling.detector import LevelRoIAlign
from vitdet_bench.solver import WarmupParamScheduler, cosine_schedule, get_optimizer_params, step_schedule


@pytest.mark.parametrize("hw", [(14, 14), (16, 20), (5, 9)])
def test_window_partition_round_trip(hw):
    x = torch.randn(2, *hw, 8)
    windows, pad = window_partition(x, 7)
    assert windows.shape[1:] == (7, 7, 8) and pad[0] % 7 == 0 and pad[1] % 7 == 0
    assert torch.equal(window_unpartition(windows, 7, pad, hw), x)


def test_window_covering_the_grid_equals_global_attention():
    torch.manual_seed(0)
    windowed = ViT(img_size=128, embed_dim=64, depth=2, num_heads=4, window_size=8, window_block_indexes=[0, 1])
    global_ = ViT(img_size=128, embed_dim=64, depth=2, num_heads=4)
    global_.load_state_dict(windowed.state_dict())
    x = torch.randn(1, 3, 128, 128)
    torch.testing.assert_close(windowed.eval()(x)["last_feat"], global_.eval()(x)["last_feat"])


def test_paper_global_blocks():
    assert global_block_indexes(12) == [2, 5, 8, 11]
    assert global_block_indexes(24) == [5, 11, 17, 23]
    assert global_block_indexes(32) == [7, 15, 23, 31]


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


def test_schedules_follow_max_iter():
    sched = WarmupParamScheduler(cosine_schedule(), warmup_iters=10, max_iter=100, warmup_factor=0.001)
    assert sched(0.0) == pytest.approx(0.001 * 1.0)
    assert sched(0.1) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.1)))
    assert sched(0.5) == pytest.approx(0.5)
    step = WarmupParamScheduler(step_schedule(1000), warmup_iters=0, max_iter=1000)
    assert step(888 / 1000) == 1.0 and step(890 / 1000) == pytest.approx(0.1) and step(0.97) == pytest.approx(0.01)


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
