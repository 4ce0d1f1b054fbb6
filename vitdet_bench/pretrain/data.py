"""Pre-training data: image folders or a detection dataset's images, and the per-method views.

Sources (both return ``(records, metadata)`` as the detection datasets do, so the engine's
resumable training loader serves them unchanged):

* :func:`image_folder_dataset`: ImageNet-style ``root/<class>/*.jpg``; labels are the sorted
  folder names (ignored by the self-supervised methods). ``labels=False`` also takes a flat folder.
* :func:`detection_image_dataset`: the images of a registered detection dataset (COCO, the demo
  splits); the label of an image is the category of its largest object.
* :func:`demo_pool_dataset`: the demo generator's object-centric pre-training pool (none of its
  images a detection image); labels, when asked for, are the dominant shape's class.

:class:`PretrainMapper` reads an image and makes the method's views with torchvision transforms
(and timm's RandAugment), seeded by the sample's seed, so a resumed run sees the same pixels.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageFilter
from torchvision import transforms as T

from ..data.build import build_detection_train_loader, get_detection_dataset
from ..data.demo_pool import ensure_demo_pool, read_image_set
from ..data.mapper import IMAGE_EXTENSIONS, read_image
from .crop import random_resized_crop
from .views import PendingView, ViewPlan, blur_kernel_size

__all__ = [
    "ImageDatasetMetadata",
    "PILGaussianBlur",
    "PretrainMapper",
    "build_pretrain_train_loader",
    "image_folder_dataset",
    "demo_pool_dataset",
    "detection_image_dataset",
    "mae_transform",
    "moco_transforms",
    "beit_transform",
    "deit_transform",
    "tokenizer_transform",
]


@dataclass
class ImageDatasetMetadata:
    name: str
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def image_folder_dataset(root: str, labels: bool = True) -> tuple[list[dict], ImageDatasetMetadata]:
    """Records of an ImageNet-style folder ``root/<class>/<image>`` (or a flat folder with ``labels=False``)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder {root} does not exist")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    records: list[dict] = []
    if classes:
        for label, cls in enumerate(classes):
            for dirpath, _, files in sorted(os.walk(os.path.join(root, cls))):
                records += [{"file_name": os.path.join(dirpath, f), "label": label}
                            for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    elif not labels:
        records = [{"file_name": os.path.join(root, f), "label": -1}
                   for f in sorted(os.listdir(root)) if f.lower().endswith(IMAGE_EXTENSIONS)]
    else:
        raise ValueError(f"{root} has no class sub-folders (root/<class>/*.jpg); "
                         "pass labels=False for unlabelled images")
    if not records:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    return records, ImageDatasetMetadata(os.path.basename(os.path.normpath(root)), tuple(classes))


def detection_image_dataset(names: str, json_file: str | None = None,
                            image_root: str | None = None) -> tuple[list[dict], ImageDatasetMetadata]:
    """The images of a detection dataset; label = category of the largest object.

    Args:
        names: a registered dataset name, or a new one when ``json_file`` and ``image_root`` are
            given (registered as :func:`~vitdet_bench.data.get_detection_dataset` does, so the
            catalog's hint "give json_file= and image_root=" works for pre-training too).
        json_file: a COCO instances file.
        image_root: the folder its ``file_name`` fields are relative to.
    """
    records, meta = get_detection_dataset(names, json_file, image_root)
    out = []
    for r in records:
        anns = r.get("annotations", [])
        label = max(anns, key=lambda a: a["bbox"][2] * a["bbox"][3])["category_id"] if anns else -1
        out.append({"file_name": r["file_name"], "image_id": r.get("image_id"), "height": r.get("height"),
                    "width": r.get("width"), "label": int(label)})
    return out, ImageDatasetMetadata(names, tuple(meta.thing_classes))


def demo_pool_dataset(size: int = 20000, seed: int = 0, labels: bool = False,
                      image_size: int = 128) -> tuple[list[dict], ImageDatasetMetadata]:
    """The demo pre-training pool: ``size`` object-centric images of the demo generator (none of
    them a detection image, :mod:`vitdet_bench.data.demo_pool`), drawn into the cache on first use
    and read as rows of a memory-mapped array.

    Args:
        size: number of images.
        seed: the generator seed.
        labels: each image's label is its dominant shape's class (the supervised initialization);
            otherwise -1. Either way the images are the same.
        image_size: the images' side in pixels.
    """
    root = ensure_demo_pool(size, seed, image_size)
    _, pool_labels, meta = read_image_set(root)
    path = os.path.join(root, "images.npy")
    records = [{"file_name": path, "array_index": i, "label": int(pool_labels[i]) if labels else -1}
               for i in range(size)]
    return records, ImageDatasetMetadata(f"demo_pool_{size}", tuple(meta["classes"]))


def _to_tensor(img: Image.Image) -> torch.Tensor:
    # 0-255 float CHW: models normalise with the detector's pixel mean / std. NumPy converts: a
    # small torch op in a data worker pays a thread-pool round trip for nothing.
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32).transpose(2, 0, 1).copy())


def mae_transform(image_size: int = 224, min_scale: float = 0.2, interpolation: str = "bicubic") -> Callable:
    """MAE: RandomResizedCrop(scale 0.2-1, bicubic) and a horizontal flip; ``interpolation="random"``:
    bilinear or bicubic per image (MAE-Lite; :func:`~.crop.random_resized_crop`)."""
    return T.Compose([random_resized_crop(image_size, min_scale, interpolation), T.RandomHorizontalFlip()])


class PILGaussianBlur:
    """Gaussian blur with sigma ~ U(sigma): PIL's filter, as MoCo v3's and BYOL's loaders use (an
    order of magnitude cheaper on the CPU than torchvision's tensor blur of a PIL image). A tensor
    image gets the exact Gaussian of the batched views (:mod:`.views`: +-3 of the largest sigma).

    Args:
        sigma: range of the blur's standard deviation in pixels.
    """

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)) -> None:
        self.sigma = sigma

    def __call__(self, img: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        # torch's generator, so the per-sample seed of PretrainMapper fixes the draw.
        s = self.sigma[0] + (self.sigma[1] - self.sigma[0]) * float(torch.rand(()))
        if isinstance(img, torch.Tensor):
            from torchvision.transforms import functional as TF

            return TF.gaussian_blur(img, kernel_size=blur_kernel_size(self.sigma[1]), sigma=s)
        return img.filter(ImageFilter.GaussianBlur(radius=s))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma})"


def moco_transforms(image_size: int = 224, min_scale: float = 0.08) -> tuple[Callable, Callable]:
    """MoCo v3's asymmetric BYOL views: both crop, jitter, grey and flip; view 1 always blurs,
    view 2 blurs with p 0.1 and solarises with p 0.2 (PIL's blur and solarize, as MoCo v3's loader)."""
    def view(blur_p: float, solarize_p: float) -> Callable:
        ops = [
            T.RandomResizedCrop(image_size, scale=(min_scale, 1.0)),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([PILGaussianBlur(sigma=(0.1, 2.0))], p=blur_p),
        ]
        if solarize_p:
            ops.append(T.RandomSolarize(128, p=solarize_p))
        ops.append(T.RandomHorizontalFlip())
        return T.Compose(ops)

    return view(1.0, 0.0), view(0.1, 0.2)


def beit_transform(image_size: int = 224, min_scale: float = 0.08) -> Callable:
    """BEiT: ColorJitter(0.4), flip, RandomResizedCrop (bicubic); the tokenizer sees the same crop."""
    return T.Compose([
        T.ColorJitter(0.4, 0.4, 0.4),
        T.RandomHorizontalFlip(),
        T.RandomResizedCrop(image_size, scale=(min_scale, 1.0), interpolation=T.InterpolationMode.BICUBIC),
    ])


def tokenizer_transform(image_size: int = 224, min_scale: float = 0.35) -> Callable:
    """Training views for the project's VQ tokenizer: crop and flip, no colour change."""
    return T.Compose([
        T.RandomResizedCrop(image_size, scale=(min_scale, 1.0), interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(),
    ])


def deit_transform(image_size: int = 224, rand_augment: str | None = "rand-m9-mstd0.5-inc1",
                   min_scale: float = 0.08) -> Callable:
    """DeiT: RandomResizedCrop (scale ``min_scale``-1, bicubic), flip, and timm's RandAugment (``None`` disables it)."""
    ops: list = [T.RandomResizedCrop(image_size, scale=(min_scale, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                 T.RandomHorizontalFlip()]
    if rand_augment:
        from timm.data import rand_augment_transform

        ops.append(rand_augment_transform(rand_augment, {"translate_const": int(image_size * 0.45),
                                                         "img_mean": (124, 116, 104)}))
    return T.Compose(ops)


class PretrainMapper:
    """Record -> ``{"image", ["image2"], "label", ["mask"]}`` for one method.

    Args:
        transform: the view transform (PIL -> PIL), or a pair of them (MoCo v3's two views,
            returned as ``"image"`` and ``"image2"``).
        second_transform: a second view given separately.
        mask_generator: a :class:`~vitdet_bench.pretrain.masking.BlockMaskGenerator` (BEiT),
            returned as ``"mask"``.
        batched: draw each view's random parameters here and leave the pixels to the model's step,
            which renders the whole batch at once on its device (:mod:`.views`: same crops, flips
            and colour factors as the per-image path for the same seed). The views are then
            :class:`~.views.PendingView` objects that :func:`~.common.stack_images` renders.

    Every random draw comes from the sample's seed (torch, Python ``random`` and numpy), so the
    views do not depend on worker count or on resuming.
    """

    def __init__(self, transform: Callable, second_transform: Callable | None = None,
                 mask_generator: Callable | None = None, batched: bool = False) -> None:
        views = list(transform) if isinstance(transform, (list, tuple)) else [transform]
        if second_transform is not None:
            views.append(second_transform)
        if not 1 <= len(views) <= 2 or any(not callable(v) for v in views):
            raise ValueError(f"PretrainMapper takes one or two callable view transforms, got {views!r}")
        self.views = views
        self.mask_generator = mask_generator
        self.plans = [ViewPlan(v) for v in views] if batched else None

    def __call__(self, record: dict, seed: int = 0) -> dict:
        pixels = read_image(record)
        out = {"label": int(record.get("label", -1)), "file_name": record["file_name"]}
        py_state = random.getstate()
        try:
            with torch.random.fork_rng(devices=[]):
                # The CPU generator only: torch.manual_seed also queues a lazy CUDA seeding that
                # records a Python stack trace every call (milliseconds per sample).
                torch.default_generator.manual_seed(seed)
                random.seed(seed)  # timm's RandAugment draws from Python's random
                if self.plans is not None:
                    source = torch.from_numpy(pixels).permute(2, 0, 1)  # uint8, shared by the views
                    h, w = pixels.shape[:2]
                    for key, plan in zip(("image", "image2"), self.plans):
                        out[key] = PendingView(source, plan.draw(h, w), plan)
                else:
                    image = Image.fromarray(pixels)
                    for key, view in zip(("image", "image2"), self.views):
                        out[key] = _to_tensor(view(image))
        finally:
            random.setstate(py_state)
        if self.mask_generator is not None:
            out["mask"] = torch.from_numpy(self.mask_generator(np.random.default_rng(seed)))
        return out


def build_pretrain_train_loader(dataset, mapper, total_batch_size: int, num_workers: int = 0, seed: int = 0,
                                on_bad_image: str = "error"):
    """The engine's resumable training loader over pre-training records (same stream guarantees
    as detection: sample g is a function of (seed, g))."""
    return build_detection_train_loader(dataset, mapper, total_batch_size, num_workers, seed, on_bad_image)

