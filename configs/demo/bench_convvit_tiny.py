# The benchmarking paper's recipe at demo scale (configs/demo/bench_vit_tiny.py: lr 4e-4 for batch
# 4, weight decay 0.1, schedule) on the demo ConvViT detector (configs/demo/mask_rcnn_convvit_tiny.py),
# so the ConvMAE / FastConvMAE rows of configs/benchmark/demo_seeds.py differ from the ViT rows only
# in the backbone and its pre-training. The ConvViT initializations (configs/demo/bench/convvit_*.py)
# start from this file.
from .bench_vit_tiny import dataloader, lr_multiplier, optimizer, train
from .mask_rcnn_convvit_tiny import model

train.output_dir = "./output/demo_bench_convvit_tiny"
