# COCO with large-scale jitter (ViTDet's coco_loader_lsj): flip, resize by U(0.1, 2.0) of 1024,
# random crop to 1024; the model pads to a 1024 square. Eval: longest side 1024, padded square.
from omegaconf import OmegaConf

from vitdet_bench.config import LazyCall as L
from vitdet_bench.data import (
    DetectionDatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset,
)
from vitdet_bench.evaluation import COCOEvaluator

_image_size = 1024

dataloader = OmegaConf.create()
dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_detection_dataset)(names="coco_2017_train", filter_empty=True, on_bad_annotation="error"),
    mapper=L(DetectionDatasetMapper)(is_train=True, image_size=_image_size, min_scale=0.1, max_scale=2.0,
                                     flip_prob=0.5),
    total_batch_size=64,
    num_workers=4,
    seed="${train.seed}",
    on_bad_image="error",
)
dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset)(names="coco_2017_val", filter_empty=False),
    mapper=L(DetectionDatasetMapper)(is_train=False, image_size=_image_size),
    num_workers=4,
    batch_size=1,  # the paper times inference at one image per forward
)
dataloader.evaluator = L(COCOEvaluator)(
    dataset_name="${..test.dataset.names}",
    output_dir="${train.output_dir}/inference",
    tasks=["bbox", "segm"],
)
