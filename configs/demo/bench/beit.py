# BEiT initialization at demo scale: the ViT pre-trained by projects/BEiT/configs/beit_vit_tiny_demo.py
# with the project's VQ tokenizer. BEiT's block keeps layer scale and q/v biases (as the COCO BEiT
# configs), and its bias tables load into the shared tables; its absolute positions start random.
from ..bench_vit_tiny import dataloader, lr_multiplier, model, optimizer, train

_vit = model.backbone.bottom_up.net
_vit.init_values = 0.1
_vit.qv_bias = True
train.output_dir = "./output/demo_bench/beit"
