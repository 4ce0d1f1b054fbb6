# COCO schedules by epochs. Detectron2 counts COCO train2017 as 118k images, so 100 epochs at batch
# 64 are its 184375 iterations (and the step milestones 163889 / 177546 fall at 88.9% / 96.3%).
COCO_TRAIN_IMAGES = 118000


def epochs_to_iters(epochs: float, total_batch_size: int = 64, num_images: int = COCO_TRAIN_IMAGES) -> int:
    """Iterations for ``epochs`` passes over ``num_images`` at ``total_batch_size``."""
    return int(round(epochs * num_images / total_batch_size))


def warmup_iters(epochs: float = 0.25, total_batch_size: int = 64, num_images: int = COCO_TRAIN_IMAGES) -> int:
    """The BENCH paper's linear warm-up: 0.25 epoch (461 iterations at batch 64)."""
    return epochs_to_iters(epochs, total_batch_size, num_images)
