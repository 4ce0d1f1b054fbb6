# The demo scale shared by every method's *_demo.py: the ViT of configs/demo/bench_vit_tiny.py
# (width 96, 4 blocks, 3 heads, patch 16) pre-trained at 128 px (an 8 x 8 grid, the detector's
# window) on the bundled demo dataset's images, on the CPU, in a minute or two.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import detection_image_dataset

DEMO_VIT = dict(arch="vit_t", img_size=128, embed_dim=96, depth=4, num_heads=3)


def demo_data(dataloader, train, name):
    """Point a pre-training config at the demo images, at CPU scale."""
    dataloader.train.dataset = L(detection_image_dataset)(names="demo_train")
    dataloader.train.total_batch_size = 16
    dataloader.train.num_workers = 0
    dataloader.train.on_bad_image = "error"
    train.device = "cpu"
    train.amp.enabled = False
    train.output_dir = f"./output/pretrain/{name}"
    train.checkpointer.period = 100
    train.checkpointer.max_to_keep = 1
    train.log_period = 10
