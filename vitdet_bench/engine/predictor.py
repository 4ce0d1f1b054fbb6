"""Inference on single images from a LazyConfig and a checkpoint (what Detectron2's
``DefaultPredictor`` does for yacs configs, which LazyConfig users have had to write themselves)."""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch
from omegaconf import DictConfig

from ..checkpoint import Checkpointer
from ..config import LazyConfig
from ..data.catalog import get_metadata
from ..data.mapper import read_image
from ..data.transforms import ResizeLongestSide
from .defaults import build_model, init_load_options, resolve_device, resolve_num_classes
from .speed import inference_amp_dtype, inference_context

__all__ = ["Predictor"]

logger = logging.getLogger(__name__)


class Predictor:
    """Run a trained detector on images.

    The image goes through the evaluation transform of ``cfg.dataloader.test.mapper`` (longest
    side to ``image_size``), the model pads it to its square, and the detections are mapped back
    to the original pixels, exactly as in evaluation.

    Args:
        cfg: a LazyConfig (or the path of one), e.g. the ``config.yaml`` a run wrote.
        checkpoint: weights to load (a detector checkpoint such as ``model_final.pth``).
        device: "cpu", "cuda" or ``None`` for ``cfg.train.device``.
        score_threshold: drop detections below this score (default: the model's test threshold).

    The model runs under ``torch.inference_mode`` and, per ``train.amp.inference``, autocast (on
    CUDA, in the training dtype when the recipe trains with AMP; ``amp_dtype`` is what it chose).

    Calling it with one image (an ``(H, W, 3)`` uint8 RGB array or a file path) returns a dict of
    numpy arrays: ``boxes`` ``(K, 4)`` XYXY, ``scores``, ``labels`` (0-based), ``class_names``
    and ``masks`` ``(K, H, W)`` bool, sorted by score.
    """

    def __init__(self, cfg: DictConfig | str, checkpoint: str | None = None, device: str | None = None,
                 score_threshold: float | None = None) -> None:
        if isinstance(cfg, str):
            cfg = LazyConfig.load(cfg)
        self.cfg = cfg
        resolve_num_classes(cfg)
        if device is not None:
            cfg.train.device = device
        self.device = resolve_device(cfg)
        self.model = build_model(cfg, self.device).eval()
        self.amp_dtype = inference_amp_dtype(cfg, self.device)
        if checkpoint:
            Checkpointer(self.model, cfg.train.get("output_dir", "."), init_options=init_load_options(cfg)
                         ).load(checkpoint, full=False)
        else:
            logger.warning("Predictor without a checkpoint: the model has random weights")
        self.transform = ResizeLongestSide(int(cfg.dataloader.test.mapper.image_size))
        self.class_names = list(get_metadata(cfg.dataloader.test.dataset.names).thing_classes)
        if len(self.class_names) != self.model.num_classes:
            raise ValueError(
                f"the test dataset '{cfg.dataloader.test.dataset.names}' has {len(self.class_names)} classes "
                f"but the model predicts {self.model.num_classes}"
            )
        self.score_threshold = score_threshold

    @staticmethod
    def _read(image: np.ndarray | str) -> np.ndarray:
        if isinstance(image, str):
            return read_image({"file_name": image})
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        return image

    def predict(self, images: Sequence[np.ndarray | str]) -> list[dict]:
        """Detections for several images (one forward pass)."""
        inputs = []
        for image in images:
            array = self._read(image)
            h, w = array.shape[:2]
            resized = np.ascontiguousarray(self.transform(array))
            inputs.append({"image": torch.from_numpy(resized).permute(2, 0, 1), "height": h, "width": w})
        with inference_context(self.device, self.amp_dtype):
            outputs = self.model(inputs)
            results = []
            for out in outputs:
                keep = out["scores"] >= self.score_threshold if self.score_threshold is not None else slice(None)
                res = {k: v[keep].cpu().numpy() for k, v in out.items()}
                res["class_names"] = [self.class_names[i] for i in res["labels"]]
                results.append(res)
        return results

    def __call__(self, image: np.ndarray | str) -> dict:
        return self.predict([image])[0]
