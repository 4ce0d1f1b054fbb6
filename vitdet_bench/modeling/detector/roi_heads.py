"""RPN and RoI heads on torchvision's parts, with the pieces Detectron2's ViTDet uses that
torchvision does not offer: an L1 / configurable smooth-L1 box loss (torchvision hard-codes
smooth-L1 with beta 1/9) and Cascade R-CNN (Cai & Vasconcelos, 2018).

Sampling, matching, box coding, NMS, mask targets and mask inference are torchvision's; what is
written here is the control flow that torchvision keeps inside one ``forward`` and the cascade,
which no maintained torchvision-based package provides.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_inference, maskrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork, concat_box_prediction_layers
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes

__all__ = ["RPN", "StandardRoIHeads", "CascadeRoIHeads", "box_regression_loss"]


def box_regression_loss(pred: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """Summed smooth-L1 with transition ``beta``; ``beta == 0`` is the plain L1 loss (Detectron2's
    ``smooth_l1_loss`` convention, used by every ViTDet config)."""
    if beta < 1e-5:
        return F.l1_loss(pred, target, reduction="sum")
    return F.smooth_l1_loss(pred, target, beta=beta, reduction="sum")


def _fp32_stand_in(feature: torch.Tensor) -> torch.Tensor:
    """A zero-stride fp32 tensor of ``feature``'s shape and device (no memory): what torchvision's
    ``AnchorGenerator`` reads from a feature map is its size, dtype and device."""
    return torch.zeros((), dtype=torch.float32, device=feature.device).expand(feature.shape)


class RPN(RegionProposalNetwork):
    """torchvision's RPN with the box loss's smooth-L1 ``beta`` configurable (0: L1, Detectron2's
    ViTDet default; torchvision uses 1/9), and boxes kept in fp32 under autocast.

    torchvision builds the anchors in the feature maps' dtype and decodes the deltas in theirs: under
    bf16 autocast (8-bit mantissa) anchor and proposal coordinates near 1024 px would be rounded
    to 4-8 px, and its cached cell anchors would stay rounded for later fp32 passes. Here anchors
    come from fp32 stand-ins of the maps and the head's outputs are cast to fp32 before decoding
    (as Detectron2's ``Box2BoxTransform`` decodes in fp32).

    Args:
        smooth_l1_beta: transition point of the regression loss.
        *args, **kwargs: ``RegionProposalNetwork``'s.
    """

    def __init__(self, *args, smooth_l1_beta: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.smooth_l1_beta = smooth_l1_beta

    def forward(self, images: ImageList, features: dict[str, torch.Tensor],
                targets: list[dict[str, torch.Tensor]] | None = None) -> tuple[list[torch.Tensor], dict]:
        """torchvision's ``RegionProposalNetwork.forward`` with fp32 anchors and deltas.

        Returns:
            proposals (one ``(P, 4)`` XYXY tensor per image) and the RPN losses (training).
        """
        maps = list(features.values())
        objectness, deltas = self.head(maps)
        objectness, deltas = [o.float() for o in objectness], [d.float() for d in deltas]
        anchors = self.anchor_generator(images, [_fp32_stand_in(m) for m in maps])
        num_anchors_per_level = [o[0].numel() for o in objectness]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        # Faster R-CNN does not backpropagate through the proposals.
        proposals = self.box_coder.decode(deltas.detach(), anchors).view(len(anchors), -1, 4)
        boxes, _ = self.filter_proposals(proposals, objectness, images.image_sizes, num_anchors_per_level)
        if not self.training:
            return boxes, {}
        if targets is None:
            raise ValueError("RPN: targets are needed in training mode")
        labels, matched_gt_boxes = self.assign_targets_to_anchors(anchors, targets)
        regression_targets = self.box_coder.encode(matched_gt_boxes, anchors)
        loss_objectness, loss_box = self.compute_loss(objectness, deltas, labels, regression_targets)
        return boxes, {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_box}

    def compute_loss(self, objectness, pred_bbox_deltas, labels, regression_targets):
        sampled_pos, sampled_neg = self.fg_bg_sampler(labels)
        sampled_pos = torch.where(torch.cat(sampled_pos, dim=0))[0]
        sampled_neg = torch.where(torch.cat(sampled_neg, dim=0))[0]
        sampled = torch.cat([sampled_pos, sampled_neg], dim=0)
        labels = torch.cat(labels, dim=0)
        regression_targets = torch.cat(regression_targets, dim=0)
        box_loss = box_regression_loss(
            pred_bbox_deltas[sampled_pos], regression_targets[sampled_pos], self.smooth_l1_beta
        ) / sampled.numel()
        objectness_loss = F.binary_cross_entropy_with_logits(objectness.flatten()[sampled], labels[sampled])
        return objectness_loss, box_loss


class StandardRoIHeads(RoIHeads):
    """torchvision's ``RoIHeads`` (box + mask) with a configurable box loss.

    It owns ``forward`` deliberately: the box predictor's outputs are decoded in fp32 under autocast
    and the box loss's beta is configurable (Detectron2's ViTDet uses L1), which torchvision's
    ``fastrcnn_loss`` / ``forward`` do not allow. Everything else is torchvision's (sampling,
    matching, post-processing, mask targets and loss); ``tests/modeling/test_detectors.py`` pins the flow:
    with torchvision's loss the losses and detections equal ``RoIHeads.forward``'s.

    Args:
        smooth_l1_beta: transition point of the box regression loss (0: L1).
        *args, **kwargs: ``RoIHeads``'s (box pooler / head / predictor, matcher thresholds,
            sampling, box-coder weights, test score threshold, NMS, detections per image, mask
            pooler / head / predictor).
    """

    def __init__(self, *args, smooth_l1_beta: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.smooth_l1_beta = smooth_l1_beta

    def box_loss(self, class_logits, box_regression, labels, regression_targets) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy + regression on the positives (class-specific or class-agnostic deltas),
        normalised by the number of sampled RoIs as in Detectron2 and torchvision."""
        labels = torch.cat(labels, dim=0)
        regression_targets = torch.cat(regression_targets, dim=0)
        loss_cls = F.cross_entropy(class_logits, labels)
        pos = torch.where(labels > 0)[0]
        deltas = box_regression.reshape(box_regression.shape[0], -1, 4)
        deltas = deltas[pos, labels[pos]] if deltas.shape[1] > 1 else deltas[pos, 0]
        loss_box = box_regression_loss(deltas, regression_targets[pos], self.smooth_l1_beta) / max(labels.numel(), 1)
        return loss_cls, loss_box

    def forward(self, features, proposals, image_shapes, targets=None):
        if self.training:
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        # fp32 under autocast: torchvision decodes boxes in the deltas' dtype (see RPN).
        class_logits, box_regression = (t.float() for t in self.box_predictor(box_features))
        if self.training:
            loss_cls, loss_box = self.box_loss(class_logits, box_regression, labels, regression_targets)
            losses = {"loss_classifier": loss_cls, "loss_box_reg": loss_box}
            losses.update(self.mask_forward_train(features, proposals, image_shapes, targets, matched_idxs, labels))
            return [], losses
        boxes, scores, classes = self.postprocess_detections(class_logits, box_regression, proposals, image_shapes)
        result = [{"boxes": b, "labels": c, "scores": s} for b, s, c in zip(boxes, scores, classes)]
        return self.mask_forward_test(features, result, image_shapes), {}

    def mask_forward_train(self, features, proposals, image_shapes, targets, matched_idxs, labels) -> dict:
        """Mask loss on the positive sampled proposals (torchvision's targets and loss)."""
        if not self.has_mask():
            return {}
        mask_proposals, pos_matched_idxs = [], []
        for props, idxs, lab in zip(proposals, matched_idxs, labels):
            pos = torch.where(lab > 0)[0]
            mask_proposals.append(props[pos])
            pos_matched_idxs.append(idxs[pos])
        mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, mask_proposals, image_shapes)))
        loss = maskrcnn_loss(mask_logits, mask_proposals, [t["masks"] for t in targets],
                             [t["labels"] for t in targets], pos_matched_idxs)
        return {"loss_mask": loss}

    def mask_forward_test(self, features, result, image_shapes) -> list[dict]:
        """Masks for the final detections (the class-specific mask of each detection's label)."""
        if not self.has_mask():
            return result
        boxes = [r["boxes"] for r in result]
        mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, boxes, image_shapes)))
        for probs, r in zip(maskrcnn_inference(mask_logits, [r["labels"] for r in result]), result):
            r["masks"] = probs
        return result


class _ScaleGradient(torch.autograd.Function):
    """Identity forward, scaled gradient backward (Detectron2's cascade divides each stage's
    gradient into the shared features by the number of stages). Written by hand: torch has no
    public op for it."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class CascadeRoIHeads(StandardRoIHeads):
    """Cascade R-CNN box heads plus the Mask R-CNN mask head.

    Stage k re-samples the previous stage's (detached) boxes, matches them at its own IoU
    (0.5 / 0.6 / 0.7, no low-quality matches) and regresses class-agnostic deltas with its own
    box-coder weights ((10, 10, 5, 5) x 1, 2, 3). Stage 0 samples proposals as Mask R-CNN does
    (512 per image, 25% positive, ground truth added). Each stage's losses are named as in
    Detectron2 (``loss_cls_stage{k}``, ``loss_box_reg_stage{k}``). At test time the class scores
    are averaged over stages, the boxes are the last stage's, then per-class NMS; the mask head
    runs on those final boxes (and, in training, on stage 0's positive samples, as in Detectron2).

    Args:
        box_roi_pool: RoI pooler for the box heads.
        box_heads: one box head per stage.
        box_predictors: one class-agnostic predictor per stage (``num_classes + 1`` scores, 4
            deltas).
        stage_iou_thresholds: foreground IoU of each stage.
        stage_bbox_reg_weights: box-coder weights of each stage.
        batch_size_per_image, positive_fraction: stage-0 sampling.
        score_thresh, nms_thresh, detections_per_img: test-time filtering.
        mask_roi_pool, mask_head, mask_predictor: the mask branch.
        smooth_l1_beta: box loss transition (0: L1).
    """

    def __init__(
        self,
        box_roi_pool: nn.Module,
        box_heads: Sequence[nn.Module],
        box_predictors: Sequence[nn.Module],
        stage_iou_thresholds: Sequence[float] = (0.5, 0.6, 0.7),
        stage_bbox_reg_weights: Sequence[Sequence[float]] = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0),
                                                             (30.0, 30.0, 15.0, 15.0)),
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
        mask_roi_pool: nn.Module | None = None,
        mask_head: nn.Module | None = None,
        mask_predictor: nn.Module | None = None,
        smooth_l1_beta: float = 0.0,
    ) -> None:
        n = len(box_heads)
        if not (n == len(box_predictors) == len(stage_iou_thresholds) == len(stage_bbox_reg_weights)) or n == 0:
            raise ValueError(
                f"CascadeRoIHeads: {len(box_heads)} box heads, {len(box_predictors)} predictors, "
                f"{len(stage_iou_thresholds)} IoU thresholds and {len(stage_bbox_reg_weights)} box-coder weights; "
                "one of each per stage is needed"
            )
        for k, p in enumerate(box_predictors):
            if getattr(p, "bbox_pred", None) is not None and p.bbox_pred.out_features != 4:
                raise ValueError(f"CascadeRoIHeads: stage {k} predictor regresses {p.bbox_pred.out_features} deltas; "
                                 "cascade stages are class-agnostic (4)")
        super().__init__(
            box_roi_pool, box_heads[0], box_predictors[0],
            fg_iou_thresh=stage_iou_thresholds[0], bg_iou_thresh=stage_iou_thresholds[0],
            batch_size_per_image=batch_size_per_image, positive_fraction=positive_fraction,
            bbox_reg_weights=tuple(stage_bbox_reg_weights[0]), score_thresh=score_thresh, nms_thresh=nms_thresh,
            detections_per_img=detections_per_img, mask_roi_pool=mask_roi_pool, mask_head=mask_head,
            mask_predictor=mask_predictor, smooth_l1_beta=smooth_l1_beta,
        )
        # The stage modules live in ModuleLists; stage 0's are also reachable as box_head /
        # box_predictor (torchvision's attribute names) without being registered twice.
        del self.box_head, self.box_predictor
        self.box_heads = nn.ModuleList(box_heads)
        self.box_predictors = nn.ModuleList(box_predictors)
        # Per-stage matchers and box coders of the classes torchvision's RoIHeads built its own with
        # (they live in its private ``_utils`` module, which this file does not import).
        matcher, coder = type(self.proposal_matcher), type(self.box_coder)
        self.stage_matchers = [matcher(t, t, allow_low_quality_matches=False) for t in stage_iou_thresholds]
        self.stage_coders = [coder(tuple(w)) for w in stage_bbox_reg_weights]

    @property
    def num_stages(self) -> int:
        return len(self.box_heads)

    def _run_stage(self, k, features, proposals, image_shapes):
        x = self.box_roi_pool(features, proposals, image_shapes)
        x = _ScaleGradient.apply(x, 1.0 / self.num_stages)
        # fp32 under autocast: the boxes are decoded from these deltas (see RPN).
        logits, deltas = self.box_predictors[k](self.box_heads[k](x))
        return logits.float(), deltas.float()

    def _decode(self, k, deltas, proposals, image_shapes) -> list[torch.Tensor]:
        counts = [len(p) for p in proposals]
        boxes = self.stage_coders[k].decode(deltas, proposals).reshape(-1, 4)
        return [clip_boxes_to_image(b, s) for b, s in zip(boxes.split(counts), image_shapes)]

    def _label(self, k, proposals, targets):
        """Match stage-k inputs to ground truth at the stage's IoU (no re-sampling)."""
        labels, regression_targets = [], []
        for props, t in zip(proposals, targets):
            if t["boxes"].numel() == 0:
                labels.append(torch.zeros(len(props), dtype=torch.int64, device=props.device))
                regression_targets.append(torch.zeros_like(props))
                continue
            idx = self.stage_matchers[k](box_iou(t["boxes"], props))
            lab = t["labels"][idx.clamp(min=0)].clone()
            lab[idx < 0] = 0
            labels.append(lab)
            regression_targets.append(self.stage_coders[k].encode_single(t["boxes"][idx.clamp(min=0)], props))
        return labels, regression_targets

    def forward(self, features, proposals, image_shapes, targets=None):
        if self.training:
            # Stage 0 samples exactly as Mask R-CNN (torchvision's sampler, stage-0 coder).
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
            losses, stage_props, stage_labels, stage_targets = {}, proposals, labels, regression_targets
            deltas = None  # stage k > 0 decodes stage k - 1's deltas
            for k in range(self.num_stages):
                if k > 0:
                    stage_props = [b.detach() for b in self._decode(k - 1, deltas.detach(), stage_props, image_shapes)]
                    stage_labels, stage_targets = self._label(k, stage_props, targets)
                logits, deltas = self._run_stage(k, features, stage_props, image_shapes)
                loss_cls, loss_box = self.box_loss(logits, deltas, stage_labels, stage_targets)
                losses[f"loss_cls_stage{k}"] = loss_cls
                losses[f"loss_box_reg_stage{k}"] = loss_box
            losses.update(self.mask_forward_train(features, proposals, image_shapes, targets, matched_idxs, labels))
            return [], losses

        scores_per_stage, boxes = [], proposals
        for k in range(self.num_stages):
            if k > 0:
                boxes = self._decode(k - 1, deltas, boxes, image_shapes)
            logits, deltas = self._run_stage(k, features, boxes, image_shapes)
            scores_per_stage.append(F.softmax(logits, -1))
        scores = sum(scores_per_stage) / self.num_stages
        final = self._decode(self.num_stages - 1, deltas, boxes, image_shapes)
        result = [self._per_class_nms(b, s) for b, s in zip(final, scores.split([len(b) for b in boxes]))]
        return self.mask_forward_test(features, result, image_shapes), {}

    def _per_class_nms(self, boxes: torch.Tensor, scores: torch.Tensor) -> dict:
        """Detectron2's ``fast_rcnn_inference`` for class-agnostic boxes: every (box, class) pair
        above the score threshold competes in per-class NMS; the top ``detections_per_img`` stay."""
        scores = scores[:, 1:]  # column 0 is background (torchvision's convention)
        keep = scores > self.score_thresh
        box_idx, cls_idx = keep.nonzero(as_tuple=True)
        b, s, c = boxes[box_idx], scores[box_idx, cls_idx], cls_idx + 1
        valid = remove_small_boxes(b, 1e-2)
        b, s, c = b[valid], s[valid], c[valid]
        kept = batched_nms(b, s, c, self.nms_thresh)[: self.detections_per_img]
        return {"boxes": b[kept], "scores": s[kept], "labels": c[kept]}
