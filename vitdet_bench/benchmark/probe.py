"""The benchmark's probe column: k-NN and linear accuracy of every initialization's encoder.

Each initialization is probed as the detector receives it: the ViT its detection config builds
(width, depth, heads, patch, position choices, BEiT's layer scale and q / v biases) run at its
pre-training resolution with every block global, loaded from the init's checkpoint through the
detector's own loader (so what is probed is what fine-tuning starts from), plus the cls token and
final norm the file carries (the detector drops them; a probe reads them). Random init is the same
ViT as the detector initialises it (seed 0). The probe set is labelled images no method trained
on: the demo generator's probe set (:func:`~vitdet_bench.data.demo_pool.ensure_demo_probe_set`), or
an ImageNet-style folder at paper scale (e.g. ImageNet val, by path); off when not configured.

Results are cached per initialization in ``OUTPUT/probe/<init>.json``, keyed by the checkpoint's
size and modification time and the probe settings, so a collection re-reads them.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..data.constants import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD
from ..evaluation.probe import ProbeResult, encoder_features, probe_features

__all__ = ["ProbeSpec", "load_probe_set", "probe_encoder_for", "run_probe"]

logger = logging.getLogger("vitdet_bench.benchmark")


@dataclass
class ProbeSpec:
    """Where the probe's labelled images come from (a benchmark file's ``probe`` dict).

    Attributes:
        dataset: "demo" (the generator's probe set) or "folder" (an ImageNet-style folder).
        train: probe training images (demo: the first ``train`` of the set; folder: per class).
        test: probe test images (demo: the next ``test``; folder: the rest of each class, capped
            at ``test`` per class).
        root: the folder (``dataset="folder"``).
        seed: the demo generator seed.
    """

    dataset: str = "demo"
    train: int = 2000
    test: int = 1000
    root: str = ""
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict | None, where: str) -> "ProbeSpec | None":
        if not d:
            return None
        unknown = set(d) - {"dataset", "train", "test", "root", "seed"}
        if unknown:
            raise ValueError(f"{where}: unknown probe keys {sorted(unknown)} (known: dataset, train, test, root, seed)")
        spec = cls(**d)
        if spec.dataset not in ("demo", "folder"):
            raise ValueError(f"{where}: probe.dataset must be 'demo' or 'folder', got {spec.dataset!r}")
        if spec.dataset == "folder" and not spec.root:
            raise ValueError(f"{where}: probe.dataset='folder' needs probe.root (an ImageNet-style folder, e.g. val)")
        if spec.train < 1 or spec.test < 1:
            raise ValueError(f"{where}: probe.train and probe.test must be positive, got {spec.train} and {spec.test}")
        return spec

    def key(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


def _folder_images(spec: ProbeSpec, image_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple]:
    """An ImageNet-style folder: per class, the first ``train`` images (sorted) train, up to ``test``
    more test; each resized (shorter side image_size / 0.875) and centre-cropped, as evaluation does."""
    from PIL import Image

    from ..pretrain.data import image_folder_dataset

    records, meta = image_folder_dataset(spec.root, labels=True)
    by_class: dict[int, list[dict]] = {}
    for r in records:
        by_class.setdefault(r["label"], []).append(r)
    resize = int(round(image_size / 0.875))
    split: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    for label, recs in sorted(by_class.items()):
        for k, r in enumerate(recs[: spec.train + spec.test]):
            img = Image.open(r["file_name"]).convert("RGB")
            w, h = img.size
            s = resize / min(w, h)
            img = img.resize((max(resize, round(w * s)), max(resize, round(h * s))), Image.BICUBIC)
            left, top = (img.size[0] - image_size) // 2, (img.size[1] - image_size) // 2
            arr = np.asarray(img.crop((left, top, left + image_size, top + image_size)))
            part = split["train" if k < spec.train else "test"]
            part[0].append(arr)
            part[1].append(label)
    return (np.stack(split["train"][0]), np.array(split["train"][1]), np.stack(split["test"][0]),
            np.array(split["test"][1]), meta.classes)


def load_probe_set(spec: ProbeSpec, image_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple]:
    """``(train images, train labels, test images, test labels, classes)`` at ``image_size``."""
    if spec.dataset == "folder":
        return _folder_images(spec, image_size)
    from ..data.demo_pool import ensure_demo_probe_set, read_image_set

    images, labels, meta = read_image_set(ensure_demo_probe_set(spec.train + spec.test, spec.seed, image_size))
    n = spec.train
    return images[:n], labels[:n], images[n:], labels[n:], tuple(meta["classes"])


def _find_vit_node(node, path: str = "model") -> tuple[DictConfig, str] | tuple[None, None]:
    """The config node that builds the detector's ViT (``_target_`` is :class:`ViT`), and its key."""
    from ..modeling.backbone.vit import ViT

    if isinstance(node, DictConfig):
        if node.get("_target_") is ViT or node.get("_target_") == "vitdet_bench.modeling.backbone.vit.ViT":
            return node, path
        for key in node:
            found = _find_vit_node(node[key], f"{path}.{key}")
            if found[0] is not None:
                return found
    return None, None


def probe_encoder_for(cfg: DictConfig, checkpoint: str = ""):
    """The encoder a detection config's initialization gives, for probing.

    Args:
        cfg: the detection config (its ViT node decides the architecture).
        checkpoint: the init's checkpoint ("" = random init).
    Returns:
        ``(encoder, pixel_mean, pixel_std, notes)``, or ``(None, None, None, reason)`` when the
        detector's backbone is not a ViT (the ConvViT is not probed).
    """
    from ..checkpoint.backbone import load_backbone_checkpoint, to_canonical
    from ..checkpoint.io import read_checkpoint
    from ..modeling.backbone.vit import ViT
    from ..pretrain.encoder import PretrainEncoder

    node, key = _find_vit_node(cfg.model)
    if node is None:
        return None, None, None, "its backbone is not a plain ViT (not probed)"
    accepted = set(inspect.signature(ViT).parameters)
    kwargs = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k in accepted}
    size = int(kwargs.get("pretrain_img_size", 224))
    # Every block global over the pre-training grid, as the methods pre-train; nothing dropped.
    kwargs.update(img_size=size, window_size=0, window_block_indexes=(), out_block_indexes=(), drop_path_rate=0.0,
                  pretrain_use_cls_token=True, attn_logits_blocks=())
    if kwargs.get("rel_pos_bias") == "per_block":
        kwargs["rel_pos_bias"] = None  # per-block detector tables are zero at init and not in pre-training files
    if kwargs.get("rel_pos_bias") == "shared":
        kwargs["rel_pos_cls_token"] = True
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = PretrainEncoder(ViT(**kwargs), cls_token=True,
                                  pos_embed="learned" if kwargs.get("use_abs_pos", True) else "none", img_size=size)
    mean, std, notes = IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD, []
    if checkpoint:
        obj = read_checkpoint(checkpoint)
        load_backbone_checkpoint(encoder.vit, obj, source=checkpoint)
        ckpt = to_canonical(obj)
        if "pos_embed" not in ckpt.state and encoder.vit.pos_embed is not None:
            # BEiT pre-trains without absolute positions; the detector adds random ones to fine-tune.
            encoder.vit.pos_embed.data.zero_()
            notes.append("no absolute positions in the file: probed without (as it was pre-trained)")
        cls = ckpt.extras.get("cls_token")
        if cls is not None and tuple(cls.shape) == tuple(encoder.cls_token.shape):
            encoder.cls_token.data.copy_(cls)
        else:
            encoder.cls_token = None
            notes.append("no cls token in the file: mean-pooled features only")
        if "norm.weight" in ckpt.extras and "norm.bias" in ckpt.extras:
            encoder.norm.load_state_dict({"weight": ckpt.extras["norm.weight"], "bias": ckpt.extras["norm.bias"]})
        else:
            notes.append("no final norm in the file: features standardised by a plain LayerNorm")
        mean = tuple(ckpt.meta.get("pixel_mean") or mean)
        std = tuple(ckpt.meta.get("pixel_std") or std)
    logger.info("Probe encoder from %s (%s), %d px%s", checkpoint or "random init", key, size,
                f"; {'; '.join(notes)}" if notes else "")
    return encoder, mean, std, "; ".join(notes)


def _cache_key(checkpoint: str, spec: ProbeSpec, cfg_node: str) -> str:
    stat = f"{os.path.getsize(checkpoint)}:{os.path.getmtime(checkpoint)}" if checkpoint else "random"
    return hashlib.sha1(f"{checkpoint}|{stat}|{spec.key()}|{cfg_node}".encode()).hexdigest()


def run_probe(cfg: DictConfig, checkpoint: str, spec: ProbeSpec, cache_file: str,
              device: str = "cpu") -> tuple[ProbeResult | None, str]:
    """Probe one initialization (reusing ``cache_file`` when it matches); ``(result, notes)``.

    ``result`` is ``None`` when the init cannot be probed (``notes`` says why)."""
    node, _ = _find_vit_node(cfg.model)
    key = _cache_key(checkpoint, spec, OmegaConf.to_yaml(node) if node is not None else "")
    if os.path.isfile(cache_file):
        try:
            with open(cache_file, encoding="utf-8") as f:
                cached = json.load(f)
            if cached.get("key") == key:
                r = ProbeResult(top1=cached["top1"],
                                correct={k: np.array(v, dtype=bool) for k, v in cached["correct"].items()},
                                linear_l2=cached["linear_l2"], num_train=cached["num_train"],
                                num_test=cached["num_test"])
                return r, cached.get("notes", "")
        except (OSError, ValueError, KeyError) as e:
            logger.warning("Probe cache %s is unreadable (%s); probing again", cache_file, e)
    encoder, mean, std, notes = probe_encoder_for(cfg, checkpoint)
    if encoder is None:
        return None, notes
    size = encoder.img_size
    xtr, ytr, xte, yte, classes = load_probe_set(spec, size)
    feats_tr = encoder_features(encoder, xtr, mean, std, device=device)
    feats_te = encoder_features(encoder, xte, mean, std, device=device)
    result = probe_features(feats_tr, ytr, feats_te, yte, len(classes))
    os.makedirs(os.path.dirname(cache_file) or ".", exist_ok=True)
    with open(cache_file, "w", encoding="utf-8") as f:
        json.dump({"key": key, "checkpoint": checkpoint, "notes": notes, "top1": result.top1,
                   "correct": {k: v.astype(int).tolist() for k, v in result.correct.items()},
                   "linear_l2": result.linear_l2, "num_train": result.num_train, "num_test": result.num_test,
                   "classes": list(classes), "image_size": size}, f)
    return result, notes
