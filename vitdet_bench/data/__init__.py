"""Datasets (COCO format, catalog, bundled demo set), LSJ transforms, samplers and loaders."""

from .build import (
    DetectionDataset,
    InferenceSampler,
    InfiniteTrainingSampler,
    TrainLoader,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset,
    sample_seed,
)
from .catalog import (
    DatasetSpec,
    get_dataset_spec,
    get_metadata,
    load_dataset,
    register_coco_instances,
    registered_datasets,
)
from .coco import CocoFormatError, DatasetMetadata, load_coco_json
from .demo import DEMO_CLASSES, ensure_demo_dataset
from .mapper import DetectionDatasetMapper, ImageReadError, annotation_to_mask, read_image
from .transforms import LargeScaleJitter, ResizeLongestSide

__all__ = [
    "CocoFormatError",
    "DEMO_CLASSES",
    "DatasetMetadata",
    "DatasetSpec",
    "DetectionDataset",
    "DetectionDatasetMapper",
    "ImageReadError",
    "InferenceSampler",
    "InfiniteTrainingSampler",
    "LargeScaleJitter",
    "ResizeLongestSide",
    "TrainLoader",
    "annotation_to_mask",
    "build_detection_test_loader",
    "build_detection_train_loader",
    "ensure_demo_dataset",
    "get_dataset_spec",
    "get_detection_dataset",
    "get_metadata",
    "load_coco_json",
    "load_dataset",
    "read_image",
    "register_coco_instances",
    "registered_datasets",
    "sample_seed",
]
