# MAE-Lite with attention distillation at demo scale: the demo ViT (width 96, 4 blocks) with
# MAE-Lite's head width 16 (6 heads, as 12 heads at width 192) and decoder (half width: 48, 1 block,
# 3 heads), RandomResizedCrop 0.08-1, on the demo images at 128 px, batch 16, on the CPU. The teacher
# is the demo MAE's export (projects/MAE/configs/mae_vit_tiny_demo.py; 3 heads, so the 1x1 adapter
# maps 6 -> 3 heads). Run that first, or let configs/benchmark/demo_seeds.py chain the two.
from ...common.demo import DEMO_VIT as _DEMO_VIT
from ...common.demo import demo_data
from .maelite_distill_vit_tiny_400ep import dataloader, lr_multiplier, model, optimizer, teacher, train

_image_size = _DEMO_VIT["img_size"]
model.encoder.update(_DEMO_VIT)
model.encoder.num_heads = 6
model.decoder_dim = 48
model.decoder_depth = 1
model.decoder_num_heads = 3
teacher.path = "./output/pretrain/mae_vit_tiny_demo/backbone_final.pth"
teacher.name = "MAE demo export"
teacher.embed_dim = _DEMO_VIT["embed_dim"]
teacher.depth = _DEMO_VIT["depth"]
teacher.num_heads = _DEMO_VIT["num_heads"]
dataloader.train.mapper.transform.image_size = _image_size
demo_data(dataloader, train, "maelite_vit_tiny_demo")
optimizer.lr = 1.5e-3
train.max_iter = 200
lr_multiplier.warmup_iters = 20
