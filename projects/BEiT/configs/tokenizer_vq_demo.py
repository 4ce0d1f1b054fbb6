# The demo's BEiT tokenizer: the VQ-VAE at CPU scale (512 codes of width 16) on the demo pre-training
# pool, batch 64.
from ...common.demo import DEMO_VIT as _DEMO_VIT
from ...common.demo import demo_data, demo_iters
from .tokenizer_vq_vit_b import dataloader, lr_multiplier, model, optimizer, train

_image_size = _DEMO_VIT["img_size"]
model.vocab_size = 512
model.code_dim = 16
model.hidden_dim = 32
dataloader.train.mapper.transform.image_size = _image_size
demo_data(dataloader, train, "tokenizer_vq_demo", bf16=True)
optimizer.lr = 2e-3
train.max_iter = demo_iters("tokenizer")  # the demo's equal-wall rule (projects/common/demo.py)
lr_multiplier.warmup_iters = 10
