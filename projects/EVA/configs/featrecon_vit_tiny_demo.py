# Feature-reconstruction MIM at demo scale, teacher = the demo MoCo v3 export (not CLIP, so not
# EVA: reports say "feature-reconstruction MIM (teacher = MoCo v3 demo export)"). EVA's recipe
# (eva_vit_b_clip_l14_800ep.py) on the demo ViT (width 96, 4 blocks) at 128 px: block masks of
# 26 / 64 patches (41%, blocks >= 4, as the BEiT demo), batch 16, on the CPU. The teacher comes
# from projects/MoCoV3/configs/mocov3_vit_tiny_demo.py (run it first, or let
# configs/benchmark/demo_seeds.py chain the two); its own pixel statistics come from its export.
from ...common.demo import DEMO_VIT as _DEMO_VIT
from ...common.demo import demo_data
from .eva_vit_b_clip_l14_800ep import dataloader, lr_multiplier, model, optimizer, teacher, train

_image_size = _DEMO_VIT["img_size"]
_grid = _image_size // 16
model.encoder.update(_DEMO_VIT)
model.encoder.drop_path_rate = 0.0
teacher.path = "./output/pretrain/mocov3_vit_tiny_demo/backbone_final.pth"
teacher.name = "MoCo v3 demo export"
teacher.embed_dim = _DEMO_VIT["embed_dim"]
teacher.depth = _DEMO_VIT["depth"]
teacher.num_heads = _DEMO_VIT["num_heads"]
teacher.checkpoint_patch_size = 16
teacher.act = "gelu"
teacher.norm_eps = 1e-6
teacher.projection = False
teacher.pixel_mean = None  # from the export's metadata
teacher.pixel_std = None
dataloader.train.mapper.transform.image_size = _image_size
dataloader.train.mapper.mask_generator.input_size = _grid
dataloader.train.mapper.mask_generator.num_masking_patches = 26
dataloader.train.mapper.mask_generator.min_num_patches = 4
demo_data(dataloader, train, "featrecon_vit_tiny_demo")
optimizer.lr = 1.5e-3
train.max_iter = 200
lr_multiplier.warmup_iters = 20
