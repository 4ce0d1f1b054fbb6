# ConvMAE initialization at demo scale: the ConvViT pre-trained by
# projects/ConvMAE/configs/convmae_convvit_tiny_demo.py (the runner sets train.init_checkpoint),
# fine-tuned with the MAE row's hyper-parameters.
from ..bench_convvit_tiny import dataloader, lr_multiplier, model, optimizer, train

train.output_dir = "./output/demo_bench/convvit_convmae"
