# The benchmarking paper's recipe at demo scale: configs/demo/mask_rcnn_vit_tiny.py (the demo
# detector) with the paper's backbone choices: absolute positions from a 128-px pre-training grid
# (8 x 8 = the window) plus BEiT-style relative position biases shared by the window blocks and by
# the global blocks (zero-initialised unless the checkpoint has them). The five initializations of
# the main job (configs/demo/bench/*.py, tools/benchmark.py) start from this file.
from .mask_rcnn_vit_tiny import dataloader, lr_multiplier, model, optimizer, train

vit = model.backbone.bottom_up.net
vit.pretrain_img_size = 128  # the demo pre-training resolution (projects/common/demo.py)
vit.rel_pos_bias = "shared"
train.output_dir = "./output/demo_bench_vit_tiny"
