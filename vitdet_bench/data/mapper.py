"""Turn a dataset record into model input: read the image, decode masks, apply the transform."""

from __future__ import annotations

import functools
import os

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch

from .transforms import LargeScaleJitter, ResizeLongestSide

__all__ = ["DetectionDatasetMapper", "IMAGE_EXTENSIONS", "ImageReadError", "read_image", "annotation_to_mask"]

# File name endings read as images when a folder is given (OpenCV reads and writes all of them).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ImageReadError(OSError):
    """An image that is missing, unreadable, or not the size its annotation file says."""


@functools.lru_cache(maxsize=8)
def _image_array(path: str) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def _read_array_row(path: str, index: int) -> np.ndarray:
    """Row ``index`` of an ``(N, H, W, 3)`` uint8 ``.npy`` array of images (memory-mapped once per process)."""
    try:
        images = _image_array(path)
    except (OSError, ValueError) as e:
        raise ImageReadError(f"Image array {path} is unreadable ({type(e).__name__}: {e})") from e
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ImageReadError(f"Image array {path} is {images.dtype} {images.shape}, not (N, H, W, 3) uint8 images")
    if not 0 <= index < images.shape[0]:
        raise ImageReadError(f"Image {index} of {path} does not exist: the array holds {images.shape[0]} images")
    return np.array(images[index])


def read_image(record: dict) -> np.ndarray:
    """Read ``record["file_name"]`` as an ``(H, W, 3)`` uint8 RGB array and check its size; a
    record with ``array_index`` is that row of the ``.npy`` image array ``file_name``."""
    path = record["file_name"]
    if "array_index" in record:
        return _read_array_row(path, int(record["array_index"]))
    where = f" (image id {record['image_id']})" if record.get("image_id") is not None else ""
    if os.path.isdir(path):
        raise ImageReadError(f"Image {path}{where} is a directory, not an image file")
    if not os.path.isfile(path):
        raise ImageReadError(f"Image {path}{where} does not exist")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f"Image {path}{where} could not be decoded: corrupt or not an image")
    truncated = _jpeg_truncation(path)
    if truncated:
        raise ImageReadError(f"Image {path}{where} is truncated: {truncated}")
    h, w = image.shape[:2]
    if "height" in record and (h, w) != (record["height"], record["width"]):
        raise ImageReadError(
            f"Image {path}{where} is {w}x{h} (width x height) but the annotation file gives "
            f"width={record['width']} height={record['height']}"
        )
    return np.ascontiguousarray(image[..., ::-1])


def _jpeg_truncation(path: str) -> str | None:
    """Why a JPEG file is cut short, or ``None`` (also for other formats).

    libjpeg decodes a JPEG whose data stops early without an error: the missing rows come out
    grey and the only trace is a "Premature end of JPEG file" line on stderr, without a file name.
    A complete JPEG ends with the end-of-image marker FF D9 (trailing zero padding aside); a file
    that does not is decoded again with Pillow, which raises on truncation, so a file with extra
    bytes after a complete image is still accepted.
    """
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            return None
        f.seek(max(0, os.path.getsize(path) - 1024))
        tail = f.read().rstrip(b"\x00\r\n\t ")
    if tail.endswith(b"\xff\xd9"):
        return None
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
    except OSError as e:
        return (f"its JPEG data ends before the end-of-image marker, as after an interrupted copy or "
                f"download (Pillow: {e})")
    return None


def annotation_to_mask(segmentation: list | dict, height: int, width: int, ann_id: object = None) -> np.ndarray:
    """Decode COCO polygons, uncompressed or compressed RLE into an ``(H, W)`` uint8 mask."""
    if isinstance(segmentation, dict):
        size = list(segmentation.get("size", []))
        if size != [height, width]:
            raise ValueError(
                f"annotation id {ann_id}: RLE size {size} does not match the image ({height}, {width})"
            )
        rle = segmentation
        if isinstance(rle["counts"], list):
            rle = mask_util.frPyObjects(rle, height, width)
        elif isinstance(rle["counts"], str):
            rle = {"size": size, "counts": rle["counts"].encode("ascii")}
    else:
        rle = mask_util.merge(mask_util.frPyObjects(segmentation, height, width))
    return mask_util.decode(rle).astype(np.uint8)


class DetectionDatasetMapper:
    """Map a record to ``{"image", "height", "width", "image_id", "instances"}``.

    Training applies large-scale jitter and returns ``instances`` with ``boxes`` (XYXY),
    ``labels`` (0-based contiguous) and ``masks``; crowd annotations are dropped. Evaluation resizes
    the longest side to ``image_size`` and keeps the original ``height`` / ``width`` so predictions
    can be mapped back.

    Args:
        is_train: training (LSJ) or evaluation (resize) behaviour.
        image_size: the LSJ target / the evaluation longest side.
        min_scale: LSJ scale range lower end.
        max_scale: LSJ scale range upper end.
        flip_prob: horizontal flip probability in training.
    """

    def __init__(
        self,
        is_train: bool,
        image_size: int = 1024,
        min_scale: float = 0.1,
        max_scale: float = 2.0,
        flip_prob: float = 0.5,
    ) -> None:
        self.is_train = is_train
        self.lsj = LargeScaleJitter(image_size, min_scale, max_scale, flip_prob)
        self.resize = ResizeLongestSide(image_size)

    def __call__(self, record: dict, seed: int = 0) -> dict:
        image = read_image(record)
        h, w = image.shape[:2]
        out = {"height": h, "width": w, "image_id": record["image_id"], "file_name": record["file_name"]}
        if not self.is_train:
            image = self.resize(image)
            out["image"] = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
            return out
        anns = [a for a in record.get("annotations", []) if not a.get("iscrowd", 0)]
        if anns:
            masks = np.stack([annotation_to_mask(a["segmentation"], h, w, a.get("id")) for a in anns])
        else:
            masks = np.zeros((0, h, w), np.uint8)
        labels = torch.tensor([a["category_id"] for a in anns], dtype=torch.int64)
        image_t, boxes, masks_t, labels = self.lsj(
            torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(masks), labels, seed
        )
        out["image"] = image_t
        out["instances"] = {"boxes": boxes, "labels": labels, "masks": masks_t}
        return out
