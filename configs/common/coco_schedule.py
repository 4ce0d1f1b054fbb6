# COCO schedules by epochs. Detectron2 counts COCO train2017 as 118k images
# (vitdet_bench.data.constants), so 100 epochs at batch 64 are its 184375 iterations (and the step
# milestones 163889 / 177546 fall at 88.9% / 96.3%).
from vitdet_bench.data.constants import COCO_TRAIN_IMAGES
from vitdet_bench.solver import epochs_to_iters as _epochs_to_iters


def epochs_to_iters(epochs: float, total_batch_size: int = 64) -> int:
    """Iterations for ``epochs`` of COCO train2017 at ``total_batch_size``."""
    return _epochs_to_iters(epochs, total_batch_size, COCO_TRAIN_IMAGES)


def warmup_iters(epochs: float = 0.25, total_batch_size: int = 64) -> int:
    """The BENCH paper's linear warm-up: 0.25 epoch (461 iterations at batch 64)."""
    return epochs_to_iters(epochs, total_batch_size)
