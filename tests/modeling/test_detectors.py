"""Detector heads: the L1 box loss, aligned RoIAlign, Cascade R-CNN training and inference."""

import os

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou, roi_align

from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.modeling.detector import LevelRoIAlign, StandardRoIHeads, box_regression_loss

from helpers import DEMO_CONFIG, FAST_OVERRIDES, REPO

CASCADE_DEMO = os.path.join(REPO, "configs", "demo", "cascade_mask_rcnn_vit_tiny.py")


def test_l1_box_loss_equals_hand_computation():
    pred = torch.tensor([[0.5, -1.0, 0.0, 2.0], [0.1, 0.1, 0.1, 0.1]])
    target = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.2, -0.1, 0.1, 0.15]])
    # |0.5| + |-1| + 0 + |2| + |-0.1| + |0.2| + 0 + |-0.05| = 3.85
    assert box_regression_loss(pred, target, beta=0.0).item() == pytest.approx(3.85, abs=1e-6)
    # smooth-L1 with beta 0.5: |d| < 0.5 -> 0.5 d^2 / 0.5, else |d| - 0.25
    hand = (0.5 - 0.25) + (1 - 0.25) + 0 + (2 - 0.25) + 0.01 + 0.04 + 0 + 0.0025
    assert box_regression_loss(pred, target, beta=0.5).item() == pytest.approx(hand, abs=1e-6)


def test_roi_head_box_loss_uses_l1_on_positives_over_all_samples():
    heads = StandardRoIHeads(None, None, None, 0.5, 0.5, 4, 0.25, None, 0.05, 0.5, 10, smooth_l1_beta=0.0)
    logits = torch.zeros(3, 3)
    deltas = torch.arange(3 * 3 * 4, dtype=torch.float32).reshape(3, 12) / 10
    labels = [torch.tensor([2, 0, 1])]
    targets = [torch.zeros(3, 4)]
    _, loss_box = heads.box_loss(logits, deltas, labels, targets)
    # positives: RoI 0 with class 2 (deltas 0.8..1.1), RoI 2 with class 1 (deltas 2.8..3.1); / 3 samples
    expected = (sum([0.8, 0.9, 1.0, 1.1]) + sum([2.8, 2.9, 3.0, 3.1])) / 3
    assert loss_box.item() == pytest.approx(expected, abs=1e-5)


def test_aligned_roi_align_matches_torchvision_per_level():
    pooler = LevelRoIAlign(["p2", "p3"], output_size=4, sampling_ratio=0, aligned=True)
    feats = {"p2": torch.randn(1, 2, 32, 32), "p3": torch.randn(1, 2, 16, 16)}
    boxes = [torch.tensor([[4.0, 4.0, 40.0, 40.0], [0.0, 0.0, 120.0, 110.0]])]
    out = pooler(feats, boxes, [(128, 128)])
    levels = pooler.map_levels(boxes)
    for i, (lvl, scale) in enumerate(zip(levels.tolist(), pooler.scales)):
        scale = pooler.scales[lvl]
        feat = feats[f"p{lvl + 2}"]
        ref = roi_align(feat, [boxes[0][i:i + 1]], 4, spatial_scale=scale, sampling_ratio=0, aligned=True)
        torch.testing.assert_close(out[i:i + 1], ref)


def _cascade_cfg():
    cfg = LazyConfig.load(CASCADE_DEMO)
    cfg = LazyConfig.apply_overrides(cfg, FAST_OVERRIDES)
    cfg.model.num_classes = 4
    return cfg


def test_cascade_paper_config_builds():
    cfg = LazyConfig.load(os.path.join(REPO, "configs", "common", "models", "cascade_mask_rcnn_vit.py"))
    model = instantiate(cfg.model)
    assert len(model.roi_heads.box_heads) == 3
    assert [p.bbox_pred.out_features for p in model.roi_heads.box_predictors] == [4, 4, 4]
    assert [c.weights for c in model.roi_heads.stage_coders] == [(10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)]
    assert [m.high_threshold for m in model.roi_heads.stage_matchers] == [0.5, 0.6, 0.7]
    assert not any(m.allow_low_quality_matches for m in model.roi_heads.stage_matchers)


def test_cascade_trains_and_its_loss_goes_down(demo_root):
    from vitdet_bench.data import build_detection_train_loader  # noqa: F401  (registers the demo sets)

    cfg = _cascade_cfg()
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    loader = iter(instantiate(cfg.dataloader.train))
    batch = next(loader)
    history = []
    for _ in range(25):
        losses = model(batch)
        assert {f"loss_box_reg_stage{k}" for k in range(3)} <= set(losses)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert sum(history[-5:]) / 5 < 0.8 * sum(history[:5]) / 5, history


def test_cascade_inference_sorted_clipped_nms(demo_root):
    from vitdet_bench.data import DetectionDatasetMapper, get_detection_dataset

    cfg = _cascade_cfg()
    cfg.model.roi_heads.score_thresh = 0.0  # an untrained head: keep everything to exercise NMS
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    records, _ = get_detection_dataset("demo_val")
    with torch.no_grad():
        (out,) = model([DetectionDatasetMapper(is_train=False, image_size=256)(records[0])])
    h, w = records[0]["height"], records[0]["width"]
    boxes, scores, labels = out["boxes"], out["scores"], out["labels"]
    assert 0 < len(boxes) <= 100
    assert torch.all(scores[:-1] >= scores[1:])
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= w).all() and (boxes[:, 1::2] <= h).all()
    assert out["masks"].shape == (len(boxes), h, w)
    for c in labels.unique():
        same = boxes[labels == c]
        iou = box_iou(same, same)
        iou.fill_diagonal_(0)
        assert (iou <= 0.5 + 1e-4).all()  # per-class NMS at 0.5 (in the network's frame; scaling keeps IoU)


def _bilinear_zero_padded(mask, u, v):
    """Sample ``mask`` (M x M) at continuous pixel coordinates (u: column, v: row), zero outside."""
    m = mask.shape[0]
    u0, v0 = int(np.floor(u)), int(np.floor(v))
    total = 0.0
    for dv in (0, 1):
        for du in (0, 1):
            r, c = v0 + dv, u0 + du
            weight = (1 - abs(u - c)) * (1 - abs(v - r))
            if 0 <= r < m and 0 <= c < m:
                total += weight * mask[r, c]
    return total


def test_batched_mask_paste_equals_per_pixel_sampling():
    """Each image pixel centre samples its box's mask bilinearly (Detectron2's paste); boxes are
    fractional and may leave the image."""
    from vitdet_bench.modeling.detector.mask_paste import _paste_whole_image, paste_masks

    g = torch.Generator().manual_seed(0)
    # Boxes inside, leaving the image on each side, smaller than a mask cell, larger than the image.
    boxes = torch.tensor([[2.3, 1.7, 11.6, 9.2], [-3.5, 4.0, 6.25, 17.9], [10.0, 0.5, 25.0, 6.0],
                          [7.2, 7.9, 8.1, 8.6], [-6.0, -5.0, 30.0, 21.0]])
    masks = torch.rand(len(boxes), 1, 6, 6, generator=g)
    masks[:, :, 0] = masks[:, :, -1] = 1.0  # certain edges: the widest reach past the box
    h, w = 14, 20
    for threshold in (0.5, 0.2, 0.9):
        out = paste_masks(masks, boxes, (h, w), threshold=threshold)  # on the CPU: per box extent
        assert out.shape == (len(boxes), h, w) and out.dtype == torch.bool
        # The whole-image path (GPUs) must give the same pixels.
        whole = _paste_whole_image(masks, boxes, torch.zeros_like(out), threshold)
        expected = np.zeros((len(boxes), h, w), bool)
        for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            for y in range(h):
                for x in range(w):
                    u = (x + 0.5 - x0) / (x1 - x0) * 6 - 0.5
                    v = (y + 0.5 - y0) / (y1 - y0) * 6 - 0.5
                    expected[i, y, x] = _bilinear_zero_padded(masks[i, 0].numpy(), u, v) >= threshold
        assert (out.numpy() == expected).all() and (whole.numpy() == expected).all(), threshold
        assert out[:3].any(dim=(1, 2)).all()  # every mask lands somewhere
    assert paste_masks(masks[:0], boxes[:0], (h, w)).shape == (0, h, w)


# --- the flow StandardRoIHeads / RPN own, pinned to torchvision's ----------------------------------

def _demo_model_and_inputs(seed: int = 0):
    """The demo detector (randomly initialised, its heads perturbed so predictions vary) and a
    random batch of features, proposals and targets for its heads."""
    from torchvision.models.detection.image_list import ImageList

    cfg = LazyConfig.load(DEMO_CONFIG)
    cfg.model.num_classes = 4
    torch.manual_seed(seed)
    model = instantiate(cfg.model)
    with torch.no_grad():
        for p in list(model.roi_heads.parameters()) + list(model.rpn.parameters()):
            p.add_(torch.randn_like(p) * 0.05)
    g = torch.Generator().manual_seed(seed)
    channels = cfg.model.backbone.out_channels
    features = {f"p{i}": torch.randn(2, channels, 256 // 2**i, 256 // 2**i, generator=g) for i in (2, 3, 4, 5)}
    features["p6"] = torch.randn(2, channels, 4, 4, generator=g)
    sizes = [(256, 256), (224, 256)]

    def boxes(n):
        xy = torch.rand(n, 2, generator=g) * 180
        return torch.cat((xy, xy + 16 + torch.rand(n, 2, generator=g) * 60), dim=1)

    proposals = [boxes(60), boxes(50)]
    targets = []
    for h, w in sizes:
        b = boxes(3)
        masks = torch.zeros(3, h, w, dtype=torch.uint8)
        for m, (x0, y0, x1, y1) in zip(masks, b.round().long().tolist()):
            m[y0:y1, x0:x1] = 1
        targets.append({"boxes": b, "labels": torch.tensor([1, 2, 4]), "masks": masks})
    return model, cfg, features, proposals, ImageList(torch.zeros(2, 3, 256, 256), sizes), targets


def test_roi_heads_equal_torchvisions_flow_with_its_loss():
    """StandardRoIHeads owns RoIHeads.forward (fp32 deltas under autocast, a configurable box loss).
    With torchvision's box loss (smooth-L1, beta 1/9) its losses and detections are torchvision's
    own ``RoIHeads.forward`` with the same modules, so an upgrade that changes that flow shows here."""
    from torchvision.models.detection.roi_heads import RoIHeads

    model, cfg, features, proposals, images, targets = _demo_model_and_inputs()
    ours = model.roi_heads
    ours.smooth_l1_beta = 1 / 9
    h = cfg.model.roi_heads
    ref = RoIHeads(ours.box_roi_pool, ours.box_head, ours.box_predictor, h.fg_iou_thresh, h.bg_iou_thresh,
                   h.batch_size_per_image, h.positive_fraction, list(h.bbox_reg_weights), 0.0, h.nms_thresh,
                   h.detections_per_img, ours.mask_roi_pool, ours.mask_head, ours.mask_predictor)
    for module in (ours, ref):
        module.train()
    torch.manual_seed(1)
    _, ours_losses = ours(features, [p.clone() for p in proposals], images.image_sizes, targets)
    torch.manual_seed(1)
    _, ref_losses = ref(features, [p.clone() for p in proposals], images.image_sizes, targets)
    assert set(ours_losses) == set(ref_losses) == {"loss_classifier", "loss_box_reg", "loss_mask"}
    for k in ref_losses:
        torch.testing.assert_close(ours_losses[k], ref_losses[k], rtol=1e-6, atol=1e-7)
    ours.score_thresh = 0.0
    ours.eval(), ref.eval()
    with torch.no_grad():
        ours_out, _ = ours(features, proposals, images.image_sizes)
        ref_out, _ = ref(features, proposals, images.image_sizes)
    assert sum(len(o["boxes"]) for o in ours_out) > 20
    for o, r in zip(ours_out, ref_out):
        assert set(o) == set(r) == {"boxes", "labels", "scores", "masks"}
        for k in r:
            torch.testing.assert_close(o[k], r[k])


def test_rpn_equals_torchvisions_flow_with_its_loss():
    """The RPN owns RegionProposalNetwork.forward (fp32 anchors and deltas); in fp32 with torchvision's
    loss its proposals and losses are torchvision's."""
    from torchvision.models.detection.rpn import RegionProposalNetwork

    model, cfg, features, _, images, targets = _demo_model_and_inputs(seed=2)
    ours = model.rpn
    ours.smooth_l1_beta = 1 / 9
    r = cfg.model.rpn
    ref = RegionProposalNetwork(ours.anchor_generator, ours.head, r.fg_iou_thresh, r.bg_iou_thresh,
                                r.batch_size_per_image, r.positive_fraction, dict(r.pre_nms_top_n),
                                dict(r.post_nms_top_n), r.nms_thresh)
    for training in (True, False):
        ours.train(training), ref.train(training)
        torch.manual_seed(3)
        ours_boxes, ours_losses = ours(images, features, targets if training else None)
        torch.manual_seed(3)
        ref_boxes, ref_losses = ref(images, features, targets if training else None)
        for a, b in zip(ours_boxes, ref_boxes):
            torch.testing.assert_close(a, b)
        assert set(ours_losses) == set(ref_losses)
        for k in ref_losses:
            torch.testing.assert_close(ours_losses[k], ref_losses[k], rtol=1e-6, atol=1e-7)
