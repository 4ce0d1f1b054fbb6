# Random initialization of the demo ConvViT detector: the architecture's own baseline for ConvMAE /
# FastConvMAE, trained as the paper trains random init (twice the pre-trained inits' lr, weight
# decay 0.2; configs/demo/bench/random.py).
from ..bench_convvit_tiny import dataloader, lr_multiplier, model, optimizer, train

optimizer.lr = 2 * optimizer.lr
optimizer.weight_decay = 0.2
train.output_dir = "./output/demo_bench/convvit_random"
