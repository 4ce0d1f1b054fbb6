# Mask R-CNN with a plain ViT-B, as in "Benchmarking Detection Transfer Learning with Vision
# Transformers" (Li et al. 2021, Sec. 3): window attention (14x14) with 4 evenly spaced global
# blocks, the XCiT-style multi-scale adapter tapping those blocks, an FPN with BatchNorm plus P6,
# a 2-conv RPN, a 4conv1fc box head with BN and a 4-conv mask head with BN. As in Detectron2's ViTDet
# configs: its unrounded anchors, L1 box losses (smooth_l1_beta=0) in RPN and RoI heads, aligned
# RoIAlign with adaptive sampling, RPN top-k 2000/1000 per level before NMS and 1000 after, score
# threshold 0.05, 100 detections, square padding to 1024 at train and test.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.modeling import FPN, MaskRCNN, MultiScaleAdapter, ViT
from vitdet_bench.modeling.backbone import vit_preset
from vitdet_bench.modeling.detector import (
    AnchorGenerator,
    build_box_head,
    build_box_predictor,
    build_mask_head,
    build_mask_predictor,
    build_rpn_head,
)
from vitdet_bench.modeling.detector.poolers import LevelRoIAlign
from vitdet_bench.modeling.detector.roi_heads import RPN, StandardRoIHeads

# ViT-B/16 pre-trained at 224 px: window 14 = the pre-training grid, global blocks 2, 5, 8, 11.
_vit_b = vit_preset("vit_b", num_global=4, pretrain_img_size=224)

model = L(MaskRCNN)(
    num_classes=80,
    backbone=L(FPN)(
        bottom_up=L(MultiScaleAdapter)(
            net=L(ViT)(
                **_vit_b,
                img_size=1024,
                mlp_ratio=4.0,
                qkv_bias=True,
                drop_path_rate=0.1,
                use_abs_pos=True,
                use_rel_pos=False,
                pretrain_use_cls_token=True,
            ),
            # The adapter taps the global blocks: the earliest feeds the 4x path.
            in_features=[f"block{i}" for i in _vit_b["out_block_indexes"]],
            scale_factors=(4.0, 2.0, 1.0, 0.5),
            norm="GN",
        ),
        out_channels=256,
        norm="BN",
        top_block=True,
        square_pad=1024,
    ),
    rpn=L(RPN)(
        anchor_generator=L(AnchorGenerator)(
            sizes=[[32], [64], [128], [256], [512]],
            aspect_ratios=[[0.5, 1.0, 2.0]] * 5,
        ),
        head=L(build_rpn_head)(in_channels="${...backbone.out_channels}", num_anchors=3, conv_depth=2),
        fg_iou_thresh=0.7,
        bg_iou_thresh=0.3,
        batch_size_per_image=256,
        positive_fraction=0.5,
        # Per level, as Detectron2 (pre) and per image (post).
        pre_nms_top_n=dict(training=2000, testing=1000),
        post_nms_top_n=dict(training=1000, testing=1000),
        nms_thresh=0.7,
        smooth_l1_beta=0.0,
    ),
    roi_heads=L(StandardRoIHeads)(
        box_roi_pool=L(LevelRoIAlign)(featmap_names=["p2", "p3", "p4", "p5"], output_size=7, sampling_ratio=0,
                                      aligned=True),
        box_head=L(build_box_head)(
            in_channels="${...backbone.out_channels}",
            pooler_resolution=7,
            conv_dims=[256, 256, 256, 256],
            fc_dims=[1024],
            norm="BN",
        ),
        # The predictor reads the box head's last fc layer.
        box_predictor=L(build_box_predictor)(in_channels="${last:${..box_head.fc_dims}}",
                                             num_classes="${...num_classes}"),
        fg_iou_thresh=0.5,
        bg_iou_thresh=0.5,
        batch_size_per_image=512,
        positive_fraction=0.25,
        bbox_reg_weights=[10.0, 10.0, 5.0, 5.0],
        score_thresh=0.05,
        nms_thresh=0.5,
        detections_per_img=100,
        smooth_l1_beta=0.0,
        mask_roi_pool=L(LevelRoIAlign)(featmap_names=["p2", "p3", "p4", "p5"], output_size=14, sampling_ratio=0,
                                       aligned=True),
        mask_head=L(build_mask_head)(in_channels="${...backbone.out_channels}", conv_dims=[256, 256, 256, 256],
                                     norm="BN"),
        mask_predictor=L(build_mask_predictor)(in_channels=256, dim_reduced=256, num_classes="${...num_classes}"),
    ),
)
