# MAE-Lite (with attention distillation from the demo MAE) initialization at demo scale: the ViT
# pre-trained by projects/MAELite/configs/maelite_vit_tiny_demo.py, with its 6 heads (MAE-Lite's
# head width 16 at width 96; the other demo inits have 3), as MAE-Lite's detector keeps its 12.
from ..bench_vit_tiny import dataloader, lr_multiplier, model, optimizer, train

_vit = model.backbone.bottom_up.net
_vit.num_heads = 6
train.output_dir = "./output/demo_bench/maelite"
