"""What the tests share (as Detectron2's ``utils/testing.py``): paths and fast overrides here, builders
of small models and official checkpoints, transcriptions of official models and recorders in the
modules beside this one. Test modules import from here, never from each other; ``tests/`` itself is
on ``sys.path`` because pytest puts the folder of the top ``conftest.py`` there.

Modules: ``vit`` (tiny ViTs, timm ViTs in each official container), ``official`` (the official MAE,
BEiT and ConvMAE models and files, transcribed), ``pretrain`` (``tools/pretrain_net.py``'s arguments,
a resumed run against one run), ``runs`` (a finished run and detections written by hand),
``device_check`` (the dry run of ``tools/device_check.py``), ``checkpoint_records`` (what every
checkpoint format loads).
"""

import os

__all__ = ["DEMO_CONFIG", "FAST_OVERRIDES", "FIXTURES", "REPO", "TESTS"]

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS)
FIXTURES = os.path.join(TESTS, "fixtures")  # reference files and config fixtures the tests read
DEMO_CONFIG = os.path.join(REPO, "configs", "demo", "mask_rcnn_vit_tiny.py")

# Overrides that make the demo config fast enough for tests: 2 images per step, evaluation on the
# first 50 validation images.
FAST_OVERRIDES = [
    "dataloader.train.total_batch_size=2",
    "dataloader.test.dataset.names=demo_minival",
    "lr_multiplier.warmup_iters=5",
    "train.log_period=5",
]
