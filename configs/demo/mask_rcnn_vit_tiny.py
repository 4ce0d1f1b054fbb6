# A CPU-sized version of configs/common/models/mask_rcnn_vit.py on the bundled demo dataset
# (synthetic shapes, generated on first use). Same architecture and recipe, scaled down: a ViT with
# 4 blocks of width 96 (2 window + 2 global), 256-px LSJ, 64-channel FPN and heads, 64 RoIs per
# image. `make demo` trains it from random init and prints the COCO AP table.
from ..common.data.coco_lsj import dataloader
from ..common.models.mask_rcnn_vit import model
from ..common.optim import AdamW as optimizer
from ..common.schedule import cosine_lr_multiplier as lr_multiplier
from ..common.train import train

image_size = 256
depth = 4

vit = model.backbone.bottom_up.net
vit.img_size = image_size
vit.embed_dim = 96
vit.depth = depth
vit.num_heads = 3
vit.drop_path_rate = 0.0
vit.window_size = 8
vit.window_block_indexes = [0, 2]  # blocks 1 and 3 are global
vit.out_block_indexes = [0, 1, 2, 3]
model.backbone.bottom_up.in_features = ["block0", "block1", "block2", "block3"]

model.num_classes = None  # taken from the training dataset's categories
model.backbone.out_channels = 64
model.backbone.square_pad = image_size
model.rpn.batch_size_per_image = 128
model.rpn.pre_nms_top_n = dict(training=1000, testing=500)
model.rpn.post_nms_top_n = dict(training=500, testing=300)
model.roi_heads.batch_size_per_image = 64
model.roi_heads.box_head.conv_dims = [64, 64, 64, 64]
model.roi_heads.box_head.fc_dims = [256]
model.roi_heads.box_predictor.in_channels = 256
model.roi_heads.mask_head.conv_dims = [64, 64, 64, 64]
model.roi_heads.mask_predictor.in_channels = 64
model.roi_heads.mask_predictor.dim_reduced = 64

dataloader.train.dataset.names = "demo_train"
dataloader.train.mapper.image_size = image_size
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 0
dataloader.test.dataset.names = "demo_val"
dataloader.test.mapper.image_size = image_size
dataloader.test.num_workers = 0

optimizer.lr = 2e-4
optimizer.weight_decay = 0.1

train.output_dir = "./output/demo_mask_rcnn_vit_tiny"
train.max_iter = 600
train.device = "cpu"
train.eval_period = 0
train.log_period = 20
train.checkpointer.period = 200
train.checkpointer.max_to_keep = 2

lr_multiplier.warmup_iters = 50
