"""What every pre-training model shares: input normalisation, batching, and the export interface."""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
import torch.nn as nn

from ..checkpoint import format_of_method
from ..data.constants import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD
from .encoder import PretrainEncoder
from .views import PendingView, render_views

__all__ = ["PRETRAIN_METHODS", "PretrainModel", "method_label", "stack_images"]

# Method name -> its PretrainModel class; each class registers itself when it is defined.
PRETRAIN_METHODS: dict[str, type["PretrainModel"]] = {}


def method_label(method: str) -> str:
    """A method's name in messages and reports (its class's ``label``); the name itself when unknown."""
    cls = PRETRAIN_METHODS.get(method)
    return cls.label if cls is not None else method


def stack_images(batch: list[dict], key: str = "image", device: torch.device | str | None = None) -> torch.Tensor:
    """A list of mapped samples -> one ``(B, 3, H, W)`` float tensor on the 0-255 scale.

    Views the mapper left pending (``PretrainMapper(batched=True)``) are rendered here for the
    whole batch, on ``device`` (default: the CPU); ready images are stacked (and moved there).
    """
    if batch and isinstance(batch[0].get(key), PendingView):
        return render_views([sample[key] for sample in batch], device or "cpu")
    try:
        images = torch.stack([sample[key] for sample in batch]).float()
    except RuntimeError as e:
        shapes = sorted({tuple(s[key].shape) for s in batch})
        raise ValueError(f"pre-training batches need equal image sizes; got {shapes} for '{key}'") from e
    return images if device is None else images.to(device)


class PretrainModel(nn.Module):
    """Base of the pre-training methods: holds the encoder and normalises inputs as the detector does.

    The pixel mean / std are the detector's (ImageNet statistics on the 0-255 RGB scale), so the
    exported backbone sees the same input distribution in both stages.

    Each method states its facts as class attributes, read by the tools, the reports and the
    checkpoint loaders (the official layout of its files lives in its checkpoint format module,
    ``vitdet_bench/checkpoint/formats/``, which names the method):

    * ``method``: its name in configs, exports and run checkpoints (``"mae"``); defining it
      registers the class in :data:`PRETRAIN_METHODS`;
    * ``label``: its name in messages and reports (``"MAE"``);
    * ``batch_keys``: what each sample of its batches holds (``"image"``, MoCo v3's second view
      ``"image2"``, ``"label"``, BEiT's block mask ``"mask"``);
    * ``uses_teacher``: it takes a frozen teacher (:mod:`vitdet_bench.pretrain.teacher`);
    * :meth:`official_format`: the checkpoint format of its official release, from the format
      module whose layout names the method (``None`` when it has none here).

    Args:
        encoder: the :class:`PretrainEncoder` whose ViT is exported.
        pixel_mean: RGB mean on the 0-255 scale.
        pixel_std: RGB std on the 0-255 scale.
    """

    method: ClassVar[str] = ""
    label: ClassVar[str] = ""
    batch_keys: ClassVar[tuple[str, ...]] = ("image", "label")
    uses_teacher: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "method" not in cls.__dict__:
            return  # a subclass of a method without a name of its own is that method
        known = PRETRAIN_METHODS.get(cls.method)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"pre-training method {cls.method!r} is defined twice: {known.__qualname__} and "
                             f"{cls.__qualname__}")
        PRETRAIN_METHODS[cls.method] = cls

    @classmethod
    def official_format(cls) -> str | None:
        """The checkpoint format of the method's official release (``tools/convert_checkpoint.py --to``)."""
        return format_of_method(cls.method)

    @classmethod
    def label_of(cls, method: str) -> str:
        """Another method's label (a checkpoint's), by its name (:func:`method_label`)."""
        return method_label(method)

    def __init__(
        self,
        encoder: PretrainEncoder,
        pixel_mean: Sequence[float] = IMAGENET_PIXEL_MEAN,
        pixel_std: Sequence[float] = IMAGENET_PIXEL_STD,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, -1, 1, 1), persistent=False)
        self.progress = 0.0  # fraction of training done, set by the SetProgress hook
        # Where the weights started: set by the checkpoint loader when train.init_checkpoint is
        # read (plain data, see vitdet_bench.checkpoint.describe_init_source); None from scratch.
        self.init_source: dict | None = None

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images.to(self.device) - self.pixel_mean) / self.pixel_std

    def attach_frozen(self, name: str, module: nn.Module) -> nn.Module:
        """Hold ``module`` (a teacher, a tokenizer) frozen: eval mode, no gradients, outside
        ``parameters()`` and ``state_dict()`` (checkpoints stay the trained model's; the frozen
        part is rebuilt from its own file on resume), moved and cast with the model."""
        module = module.eval().requires_grad_(False)
        self.__dict__[name] = module
        self.__dict__.setdefault("_frozen_names", []).append(name)
        return module

    def _apply(self, fn, *args, **kwargs):
        for name in self.__dict__.get("_frozen_names", ()):
            self.__dict__[name] = self.__dict__[name]._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def set_progress(self, iteration: int, max_iter: int) -> None:
        """Called before every step; methods with schedules of their own (MoCo's momentum) use it."""
        self.progress = iteration / max(max_iter, 1)

    def export_state(self) -> dict[str, torch.Tensor]:
        """Backbone weights in the detector's names (see :meth:`PretrainEncoder.export_state`)."""
        return self.encoder.export_state()

    def export_meta(self) -> dict:
        """What the export's metadata records about the model."""
        vit = self.encoder.vit
        return {
            "method": self.method,
            "arch": self.encoder.arch,
            "image_size": self.encoder.img_size,
            "embed_dim": vit.embed_dim,
            "depth": vit.depth,
            "num_heads": vit.blocks[0].attn.num_heads,
            "patch_size": vit.patch_size,
            "pos_embed": self.encoder.pos_embed_kind,
            "pos_embed_has_cls": self.encoder.cls_token is not None and vit.pos_embed is not None,
            "rel_pos_bias": vit.rel_pos_bias_mode,
            "layer_scale": any(hasattr(b.ls1, "gamma") for b in vit.blocks),
            "qv_bias": vit.blocks[0].attn.q_bias is not None,
            "pixel_mean": [float(v) for v in self.pixel_mean.flatten()],
            "pixel_std": [float(v) for v in self.pixel_std.flatten()],
        }
