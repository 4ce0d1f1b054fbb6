# MAE at demo scale (the main job's MAE initialization): the ViT-B recipe with a 64-wide, 1-block
# decoder (MAE-Lite's tiny decoder) on the demo pre-training pool at 128 px, batch 64, on the CPU.
from ...common.demo import DEMO_VIT as _DEMO_VIT
from ...common.demo import demo_data, demo_iters
from .mae_vit_b_800ep import dataloader, lr_multiplier, model, optimizer, train

_image_size = _DEMO_VIT["img_size"]
model.encoder.update(_DEMO_VIT)
model.decoder_dim = 64
model.decoder_depth = 1
model.decoder_num_heads = 4
dataloader.train.mapper.transform.image_size = _image_size
demo_data(dataloader, train, "mae_vit_tiny_demo")
optimizer.lr = 1.5e-3
train.max_iter = demo_iters("mae")  # the demo's equal-wall rule (projects/common/demo.py)
lr_multiplier.warmup_iters = 20
