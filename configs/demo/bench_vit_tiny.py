# The benchmarking paper's recipe at demo scale: configs/demo/mask_rcnn_vit_tiny.py (the demo
# detector) with the paper's backbone choices: absolute positions from a 128-px pre-training grid
# (8 x 8 = the window) plus BEiT-style relative position biases shared by the window blocks and by
# the global blocks (zero-initialised unless the checkpoint has them). The five initializations of
# the main job (configs/demo/bench/*.py, tools/benchmark.py) start from this file and change only
# what the paper's Table of hyper-parameters changes per initialization (Li et al. 2021, Sec. 4.1:
# lr 8e-5 for supervised / BEiT / MAE, 1.6e-4 for random and MoCo v3; weight decay 0.1, 0.2 for
# random). At demo scale the base lr is 4e-4 (batch 4, a 1M-parameter model); the ratios are the
# paper's.
from ...projects.common.demo import DEMO_VIT as _DEMO_VIT
from .mask_rcnn_vit_tiny import dataloader, lr_multiplier, model, optimizer, train

_vit = model.backbone.bottom_up.net
_vit.pretrain_img_size = _DEMO_VIT["img_size"]  # the demo pre-training resolution
_vit.rel_pos_bias = "shared"
optimizer.lr = 4e-4  # the paper's 8e-5
optimizer.weight_decay = 0.1
train.reference_batch_size = 4  # the lr above is for batch 4; other batches scale it linearly
train.output_dir = "./output/demo_bench_vit_tiny"
