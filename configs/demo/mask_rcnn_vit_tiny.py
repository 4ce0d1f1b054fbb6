# configs/common/models/mask_rcnn_vit.py (the paper's ViT-B Mask R-CNN) at demo scale, on the bundled
# demo dataset (synthetic shapes, generated on first use). Same architecture and recipe, scaled by
# two rules so that the parts keep the paper's proportions:
#   widths / 8:  ViT 768 -> 96 (4 blocks: 2 window + 2 global, 3 heads), FPN and conv heads
#                256 -> 32, box head fc 1024 -> 128;
#   image 1024 -> 256 px: RoIs per image scale with the area (512 -> 32), proposals with the side
#                (2000 / 1000 before / after NMS in training -> 500 / 250, 1000 / 1000 at test -> 250 / 250).
# The anchors, IoU thresholds, losses, norms, LSJ range and schedule shape are the paper's.
# `make demo-detector` trains it from random init; the benchmark's five initializations
# (configs/demo/bench/*.py) start from bench_vit_tiny.py, which adds the paper's position choices.
from ...projects.common.demo import DEMO_VIT as _DEMO_VIT
from ..common.data.coco_lsj import dataloader
from ..common.models.mask_rcnn_vit import model
from ..common.optim import AdamW as optimizer
from ..common.schedule import cosine_lr_multiplier as lr_multiplier
from ..common.train import train

_image_size = 256
_width_scale = 8  # the paper's channel widths / this
_area_scale = (1024 // _image_size) ** 2  # the paper's per-image counts / this (16)

_vit = model.backbone.bottom_up.net
_vit.img_size = _image_size
_vit.embed_dim = 768 // _width_scale
_vit.depth = 4
_vit.num_heads = 3
_vit.drop_path_rate = 0.0
_vit.window_size = _DEMO_VIT["img_size"] // 16  # the demo pre-training grid (8 x 8), as the paper's 14
_vit.window_block_indexes = [0, 2]  # blocks 1 and 3 are global
_vit.out_block_indexes = [0, 1, 2, 3]
model.backbone.bottom_up.in_features = ["block0", "block1", "block2", "block3"]

model.num_classes = None  # taken from the training dataset's categories
_channels = 256 // _width_scale
model.backbone.out_channels = _channels
model.backbone.square_pad = _image_size
model.rpn.pre_nms_top_n = dict(training=2000 * _image_size // 1024, testing=1000 * _image_size // 1024)
model.rpn.post_nms_top_n = dict(training=1000 * _image_size // 1024, testing=1000 * _image_size // 1024)
model.roi_heads.batch_size_per_image = 512 // _area_scale
model.roi_heads.box_head.conv_dims = [_channels] * 4
model.roi_heads.box_head.fc_dims = [1024 // _width_scale]
model.roi_heads.mask_head.conv_dims = [_channels] * 4
model.roi_heads.mask_predictor.in_channels = _channels
model.roi_heads.mask_predictor.dim_reduced = _channels

dataloader.train.dataset.names = "demo_train"
dataloader.train.mapper.image_size = _image_size
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 0
dataloader.test.dataset.names = "demo_val"
dataloader.test.mapper.image_size = _image_size
dataloader.test.num_workers = 0
dataloader.test.batch_size = 8  # amortises per-call overhead on a 1M-parameter model

optimizer.lr = 4e-4
optimizer.weight_decay = 0.1
optimizer.fused = True  # torch's fused AdamW kernel (CPU and CUDA)

# Mixed precision, as the paper's recipe trains (AMP). bfloat16 autocast runs on GPUs and on CPUs with
# AVX-512 BF16 / AMX: on 2 such cores it took the demo detector from 14.6 to 25.8 training images/s
# (tools/benchmark_detector.py --config-file configs/demo/bench/random.py). Evaluation stays fp32 on
# the CPU (train.amp.inference: as training on CUDA only). A CPU without bf16 support emulates it
# slowly: set train.amp.enabled=False there.
train.amp.enabled = True
train.amp.dtype = "bfloat16"

train.output_dir = "./output/demo_mask_rcnn_vit_tiny"
train.max_iter = 1500
train.device = "auto"
train.eval_period = 300
train.log_period = 20
train.checkpointer.period = 300
train.checkpointer.max_to_keep = 2

lr_multiplier.warmup_iters = 50
