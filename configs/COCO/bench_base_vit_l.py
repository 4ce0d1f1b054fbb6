# The benchmarking paper's recipe for ViT-L (see bench_base_vit_b.py): 24 blocks of width 1024,
# global blocks 5, 11, 17, 23 (which the adapter taps), drop path 0.3, same lr / wd as ViT-B.
from vitdet_bench.modeling.backbone import vit_preset

from .bench_base_vit_b import dataloader, lr_multiplier, model, optimizer, train

_vit_l = vit_preset("vit_l", num_global=4, pretrain_img_size=224)
_vit = model.backbone.bottom_up.net
_vit.update(_vit_l)
_vit.drop_path_rate = 0.3
model.backbone.bottom_up.in_features = [f"block{i}" for i in _vit_l["out_block_indexes"]]
