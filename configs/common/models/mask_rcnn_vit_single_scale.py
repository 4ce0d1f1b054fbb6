# The benchmarking paper's single-scale ablation (Li et al. 2021, Table 2): the same ViT-B with
# window + 4 global blocks, but RPN and RoIAlign run on the stride-16 map only (no adapter
# up/down-sampling, no P6). Anchors of all five sizes share that one level.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.modeling import FPN, MultiScaleAdapter

from .mask_rcnn_vit import model

_net = model.backbone.bottom_up.net
_net.out_block_indexes = []
model.backbone = L(FPN)(
    bottom_up=L(MultiScaleAdapter)(net=_net, in_features="last_feat", scale_factors=(1.0,), norm="GN"),
    out_channels=256,
    norm="BN",
    top_block=False,
    square_pad=1024,
    size_divisibility=16,
)
model.rpn.anchor_generator.sizes = [[32, 64, 128, 256, 512]]
model.rpn.anchor_generator.aspect_ratios = [[0.5, 1.0, 2.0]]
model.rpn.head.num_anchors = 15
model.roi_heads.box_roi_pool.featmap_names = ["p4"]
model.roi_heads.mask_roi_pool.featmap_names = ["p4"]
