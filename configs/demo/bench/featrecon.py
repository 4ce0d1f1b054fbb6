# Feature-reconstruction MIM initialization at demo scale (teacher = the demo MoCo v3 export): the
# ViT pre-trained by projects/EVA/configs/featrecon_vit_tiny_demo.py (the runner sets
# train.init_checkpoint). Its q / v biases load as one qkv bias with a zero key bias (exact).
from ..bench_vit_tiny import dataloader, lr_multiplier, model, optimizer, train

_vit = model.backbone.bottom_up.net
train.output_dir = "./output/demo_bench/featrecon"
