# MoCo v3 at demo scale: the ViT-B recipe with 256-wide heads, on the demo pre-training pool at
# 128 px, batch 64 (2 x 64 in-batch negatives per query; the paper's 4096 is out of a CPU's reach).
from ...common.demo import DEMO_VIT as _DEMO_VIT
from ...common.demo import demo_data, demo_iters
from .mocov3_vit_b_300ep import dataloader, lr_multiplier, model, optimizer, train

_image_size = _DEMO_VIT["img_size"]
model.encoder.update(_DEMO_VIT)
model.mlp_dim = 256
model.dim = 64
model.sync_bn = False
dataloader.train.mapper.transform.image_size = _image_size
demo_data(dataloader, train, "mocov3_vit_tiny_demo")
optimizer.lr = 1.5e-3
train.max_iter = demo_iters("mocov3")  # the demo's equal-wall rule (projects/common/demo.py)
lr_multiplier.warmup_iters = 20
