# Random initialization at demo scale (BENCH's baseline: nothing pre-trained; every weight is
# initialised as the detector builds it). The paper trains it with twice the pre-trained inits' lr
# (1.6e-4 vs 8e-5) and weight decay 0.2.
from ..bench_vit_tiny import dataloader, lr_multiplier, model, optimizer, train

optimizer.lr = 2 * optimizer.lr
optimizer.weight_decay = 0.2
train.output_dir = "./output/demo_bench/random"
