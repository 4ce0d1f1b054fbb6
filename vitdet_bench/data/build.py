"""Datasets, samplers and loaders for training (infinite, resumable) and evaluation (sharded)."""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..utils import comm
from .catalog import load_dataset, register_coco_instances
from .coco import DatasetMetadata
from .mapper import DetectionDatasetMapper, ImageReadError

__all__ = [
    "DetectionDataset",
    "InfiniteTrainingSampler",
    "InferenceSampler",
    "TrainLoader",
    "build_detection_train_loader",
    "build_detection_test_loader",
    "get_detection_dataset",
    "sample_seed",
]

logger = logging.getLogger(__name__)


def sample_seed(seed: int, position: int) -> int:
    """The seed of the sample at ``position`` in the global training stream of run ``seed``."""
    return int(np.random.SeedSequence([seed, position]).generate_state(1)[0])


def get_detection_dataset(
    names: str,
    json_file: str | None = None,
    image_root: str | None = None,
    filter_empty: bool = False,
    on_bad_annotation: str = "error",
) -> tuple[list[dict], DatasetMetadata]:
    """Load a dataset by catalog name; giving ``json_file`` and ``image_root`` registers it first.

    So a custom COCO-format dataset is one config line:
    ``dataloader.train.dataset = L(get_detection_dataset)(names="mine", json_file=..., image_root=...)``.
    """
    if (json_file is None) != (image_root is None):
        raise ValueError(f"Dataset '{names}': give both json_file and image_root, or neither")
    if json_file is not None:
        register_coco_instances(names, json_file, image_root)
    return load_dataset(names, filter_empty=filter_empty, on_bad_annotation=on_bad_annotation)


class DetectionDataset(Dataset):
    """Records + mapper. Training keys are ``(index, seed)``; evaluation keys are indices.

    Args:
        records: the per-image records.
        mapper: called as ``mapper(record, seed)``.
        on_bad_image: ``"error"`` raises on a missing / corrupt image; ``"skip"`` logs it and uses
            the next record instead (keeping the batch full).
    """

    def __init__(self, records: list[dict], mapper: Callable, on_bad_image: str = "error") -> None:
        if on_bad_image not in ("error", "skip"):
            raise ValueError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
        self.records = records
        self.mapper = mapper
        self.on_bad_image = on_bad_image
        self.num_skipped = 0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        for attempt in range(len(self.records)):
            record = self.records[(index + attempt) % len(self.records)]
            try:
                return self.mapper(record, seed)
            except ImageReadError as e:
                if self.on_bad_image == "error":
                    raise
                self.num_skipped += 1
                logger.warning("Skipping a bad image (%d skipped so far): %s", self.num_skipped, e)
        raise ImageReadError("Every image of the dataset failed to load")


class InfiniteTrainingSampler(Sampler):
    """An endless, shuffled stream of ``(index, sample seed)`` for one rank, resumable by position.

    Global position ``g`` holds sample ``perm_e[g mod N]`` with ``e = g // N`` and ``perm_e`` a
    permutation seeded by (seed, e); rank ``r`` of ``W`` takes positions ``r, r + W, ...``. Nothing
    is stateful, so starting at ``start`` reproduces exactly what an uninterrupted run would see.

    Args:
        size: dataset length.
        seed: the run seed.
        start: this rank's first position (``start_iter * batch_per_rank`` when resuming).
        shuffle: permute each epoch (else sequential).
    """

    def __init__(self, size: int, seed: int = 0, start: int = 0, shuffle: bool = True) -> None:
        if size <= 0:
            raise ValueError("The training dataset is empty")
        self.size, self.seed, self.start, self.shuffle = size, seed, start, shuffle
        self.rank, self.world = comm.get_rank(), comm.get_world_size()

    def _perm(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        pos = self.start
        epoch, perm = -1, None
        while True:
            g = pos * self.world + self.rank
            e, k = divmod(g, self.size)
            if e != epoch:
                epoch, perm = e, self._perm(e)
            yield int(perm[k]), sample_seed(self.seed, g)
            pos += 1


class InferenceSampler(Sampler):
    """Each rank takes a contiguous shard of ``range(size)``; together they cover it once."""

    def __init__(self, size: int) -> None:
        rank, world = comm.get_rank(), comm.get_world_size()
        shard = (size - 1) // world + 1 if size else 0
        self.indices = range(rank * shard, min(size, (rank + 1) * shard))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _trivial_collate(batch: list[dict]) -> list[dict]:
    return batch


class TrainLoader:
    """Iterable of training batches (lists of mapped dicts) that can restart at any iteration.

    The trainer calls :meth:`set_start_iter` on resume, so the stream continues where the saved run
    stopped. Randomness comes from the per-sample seeds, not from worker state.
    """

    def __init__(
        self,
        dataset: DetectionDataset,
        total_batch_size: int,
        num_workers: int = 0,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        world = comm.get_world_size()
        if total_batch_size % world != 0:
            raise ValueError(
                f"dataloader.train.total_batch_size={total_batch_size} is not divisible by the "
                f"number of processes ({world})"
            )
        self.dataset = dataset
        self.total_batch_size = total_batch_size
        self.batch_size = total_batch_size // world
        self.num_workers = num_workers
        self.seed = seed
        self.shuffle = shuffle
        self.start_iter = 0

    @property
    def metadata(self) -> Any:
        return getattr(self.dataset, "metadata", None)

    def set_start_iter(self, start_iter: int) -> None:
        self.start_iter = start_iter

    def __iter__(self) -> Iterator[list[dict]]:
        sampler = InfiniteTrainingSampler(
            len(self.dataset), self.seed, self.start_iter * self.batch_size, self.shuffle
        )
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=_trivial_collate,
            # A private generator keeps the loader from drawing on the global torch RNG, whose
            # state is part of what a checkpoint restores.
            generator=torch.Generator().manual_seed(self.seed),
            persistent_workers=False,
        )
        yield from loader


def build_detection_train_loader(
    dataset: tuple[list[dict], DatasetMetadata],
    mapper: DetectionDatasetMapper,
    total_batch_size: int,
    num_workers: int = 0,
    seed: int = 0,
    on_bad_image: str = "error",
) -> TrainLoader:
    """The training loader: LSJ batches from an infinite, per-rank, resumable stream.

    Args:
        dataset: ``(records, metadata)`` from :func:`get_detection_dataset`.
        mapper: a training :class:`DetectionDatasetMapper`.
        total_batch_size: images per iteration over all processes.
        num_workers: data-loader worker processes per rank.
        seed: the data seed (the trainer passes ``train.seed``).
        on_bad_image: ``"error"`` or ``"skip"`` for missing / corrupt images.
    """
    records, metadata = dataset
    if not records:
        raise ValueError(_empty_dataset_message(metadata))
    ds = DetectionDataset(records, mapper, on_bad_image)
    ds.metadata = metadata  # type: ignore[attr-defined]
    return TrainLoader(ds, total_batch_size, num_workers, seed)


def _empty_dataset_message(metadata: Any) -> str:
    name = getattr(metadata, "name", "") or "?"
    json_file = getattr(metadata, "json_file", None)
    if json_file:
        return (f"The training dataset '{name}' ({json_file}) has no image to train on: its 'images' list is empty, "
                "or no image has a (non-crowd) annotation, and dataloader.train.dataset.filter_empty=True drops "
                "such images. Check the file, or point dataloader.train.dataset.names at another dataset.")
    return f"The training dataset '{name}' has no image to train on; check dataloader.train.dataset."


def build_detection_test_loader(
    dataset: tuple[list[dict], DatasetMetadata],
    mapper: DetectionDatasetMapper,
    num_workers: int = 0,
    batch_size: int = 1,
) -> DataLoader:
    """The evaluation loader: each image seen once across all ranks.

    Args:
        dataset: ``(records, metadata)`` from :func:`get_detection_dataset`.
        mapper: an evaluation :class:`DetectionDatasetMapper`.
        num_workers: data-loader worker processes per rank.
        batch_size: images per forward pass (1, the paper's protocol for timing; more amortises
            per-call overhead on small models; detections are the same up to floating-point
            rounding, as every image is handled on its own after the batched network pass).
    """
    if batch_size < 1:
        raise ValueError(f"dataloader.test.batch_size must be >= 1, got {batch_size}")
    records, metadata = dataset
    ds = DetectionDataset(records, mapper)
    ds.metadata = metadata  # type: ignore[attr-defined]
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=InferenceSampler(len(ds)),
        num_workers=num_workers,
        collate_fn=_trivial_collate,
    )
