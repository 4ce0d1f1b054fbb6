"""File conversions behind ``tools/convert_checkpoint.py``.

* :func:`convert_backbone_file`: a pre-trained ViT (MAE, MoCo v3, BEiT, DeiT, timm, MAE-Lite) -> the
  project's backbone export (detection names plus metadata; small, weights-only, explicit).
* :func:`convert_detector_file`: a whole detector, either way between this project's layout and
  Detectron2's (``.pkl`` model-zoo file or ``.pth``). The detector is built from a config, the
  input is loaded into it strictly (so a file that does not fit the config fails with the load
  report), and the output is written from the loaded model, so it loads with nothing missing.
* :func:`convert_method_file`: a pre-training run here (``model_final.pth``: the whole method) ->
  the official repository's checkpoint (MAE, BEiT, MoCo v3, DeiT, ConvMAE), to continue in the
  official code.

None of them writes over its input or over a checkpoint of a run (``model_*.pth``, ``backbone_*.pth``
in a directory with ``last_checkpoint``), and none converts weights holding NaN or inf: each is
refused, naming the file, before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
from typing import Any, Sequence

import torch.nn as nn
from timm.layers import resample_patch_embed

from ..config import LazyConfig, instantiate
from .formats import (
    DETECTOR_FORMATS,
    EXPORT_TAG,
    METHOD_LAYOUTS,
    find_state_dict,
    get_format,
    num_classes_in,
    save_backbone_export,
    save_detectron2_checkpoint,
    to_canonical,
    to_detectron2,
)
from .init import detect_init_format, load_init_checkpoint
from .io import CheckpointError, atomic_torch_save, read_checkpoint, refuse_nonfinite
from .method import to_official
from .report import LoadReport

__all__ = ["OUTPUT_LAYOUTS", "check_output_file", "convert_backbone_file", "convert_detector_file",
           "convert_method_file"]

logger = logging.getLogger(__name__)

OUTPUT_LAYOUTS = ("vitdet_bench", "detectron2")
_RUN_CHECKPOINT = re.compile(r"^(model|backbone|tokenizer)_(\d{7}|final)\.pth$")


def check_output_file(src: str, dst: str) -> None:
    """Refuse an output that is the input, or a checkpoint of a training / pre-training run.

    Args:
        src: the file to convert.
        dst: the file to write.

    Raises:
        CheckpointError: naming both files and what to do.
    """
    if os.path.exists(dst) and os.path.exists(src) and os.path.samefile(src, dst):
        raise CheckpointError(f"The output {dst} is the input {src}: converting would replace it. Give another "
                              "output file.")
    folder = os.path.dirname(os.path.abspath(dst))
    if os.path.exists(dst) and _RUN_CHECKPOINT.match(os.path.basename(dst)) and \
            os.path.exists(os.path.join(folder, "last_checkpoint")):
        raise CheckpointError(f"The output {dst} is a checkpoint of the run in {folder}: converting would replace "
                              "it. Give an output file outside the run's checkpoints.")


def _plain(value: Any) -> Any:
    """JSON-like copy of a saved ``args`` value (so the output loads with weights_only=True)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def convert_backbone_file(src: str, dst: str, format: str = "auto", patch_size: int | None = None) -> dict:
    """Convert a pre-trained ViT file to the project's backbone export and write it to ``dst``.

    Args:
        src: the official file (``torch.save`` format).
        dst: where to write ``{"format", "version", "model", "meta"}``.
        format: the source format or "auto".
        patch_size: resample the patch-embed kernel to this patch size (e.g. 16 for ViT-H/14).

    Returns:
        the metadata written (source file and format, width, depth, patch size, pre-training grid,
        layer scale, bias-table layout, the source's saved ``args`` / ``epoch`` / ``arch``).
    """
    check_output_file(src, dst)
    obj = read_checkpoint(src)
    ckpt = to_canonical(obj, format)
    state = ckpt.state
    refuse_nonfinite(state, src, "converted")
    meta: dict[str, Any] = {"source_file": os.path.abspath(src), "source_format": ckpt.format}
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("blocks.")}
    weight = state.get("patch_embed.proj.weight")
    if weight is not None:
        meta.update(embed_dim=int(weight.shape[0]), patch_size=int(weight.shape[-1]))
    meta["depth"] = len(blocks)
    if "pos_embed" in state:
        n = state["pos_embed"].shape[1]
        has_cls = math.isqrt(n) ** 2 != n
        meta.update(pretrain_grid=math.isqrt(n - has_cls), pos_embed_has_cls=has_cls)
    meta["layer_scale"] = any(k.endswith("ls1.gamma") for k in state)
    per_block = any(k.endswith("attn.relative_position_bias_table") for k in state)
    meta["rel_pos_bias"] = ("shared" if "rel_pos_bias.relative_position_bias_table" in state else
                            "per_block" if per_block else None)
    saved_args = obj.get("args") if isinstance(obj, dict) else None
    if isinstance(saved_args, argparse.Namespace):
        meta["source_args"] = {k: _plain(v) for k, v in vars(saved_args).items()}
    for key in ("epoch", "start_epoch", "arch"):  # start_epoch: MAE-Lite's
        if isinstance(obj, dict) and isinstance(obj.get(key), (int, str)):
            meta[f"source_{key}"] = obj[key]
    if patch_size and weight is not None and weight.shape[-1] != patch_size:
        state["patch_embed.proj.weight"] = resample_patch_embed(weight, [patch_size] * 2, interpolation="bicubic",
                                                                antialias=True)
        logger.info("resampled patch_embed.proj.weight %s -> %s", tuple(weight.shape),
                    tuple(state["patch_embed.proj.weight"].shape))
        meta["patch_size"] = patch_size
        meta["patch_embed_resampled_from"] = int(weight.shape[-1])
    save_backbone_export(state, dst, meta)
    logger.info("%s: format %s; kept %d tensors (%.2fM values) for the backbone", src, ckpt.format, len(state),
                sum(v.numel() for v in state.values()) / 1e6)
    for why, n in sorted(ckpt.dropped.items()):
        logger.info("  dropped %5d tensors: %s", n, why)
    for old, new in ckpt.renamed:
        logger.info("  renamed %s -> %s", old, new)
    logger.info("wrote %s  meta: %s", dst, meta)
    return meta


def _build_detector(config_file: str, overrides: Sequence[str], num_classes: int | None) -> nn.Module:
    """The config's ``model``, with ``num_classes`` taken from the checkpoint when the config leaves
    it to the dataset (``None``); a config that disagrees with the checkpoint is an error."""
    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), list(overrides))
    if "num_classes" in cfg.model:
        if cfg.model.num_classes is None:
            if num_classes is None:
                raise CheckpointError(f"{config_file}: model.num_classes is None and the checkpoint has no "
                                      "box predictor to take it from; pass model.num_classes=N")
            cfg.model.num_classes = num_classes
        elif num_classes is not None and cfg.model.num_classes != num_classes:
            raise CheckpointError(f"{config_file}: model.num_classes={cfg.model.num_classes}, but the checkpoint "
                                  f"was trained for {num_classes} classes")
    return instantiate(cfg.model)


def convert_detector_file(src: str, dst: str, config_file: str, source_format: str = "auto",
                          to: str = "vitdet_bench", overrides: Sequence[str] = ()) -> LoadReport:
    """Convert a whole detector checkpoint between this project's layout and Detectron2's.

    Args:
        src: a detector checkpoint: ours (``model_final.pth``) or Detectron2's (``.pkl`` / ``.pth``).
        dst: the output; for ``to="detectron2"`` a ``.pkl`` name writes a model-zoo pickle of numpy
            arrays, any other name a ``torch.save`` file ``{"model": ...}``.
        config_file: the LazyConfig of the detector (``configs/...py`` or a run's ``config.yaml``).
        source_format: "auto", "detector" (ours) or "detectron2".
        to: :data:`OUTPUT_LAYOUTS`: "vitdet_bench" (loads with ``train.init_checkpoint`` or
            ``--eval-only``) or "detectron2" (loads in Detectron2's ``DetectionCheckpointer``).
        overrides: ``key=value`` config overrides.

    Returns:
        the strict load report of ``src`` into the config's model.
    """
    if to not in OUTPUT_LAYOUTS:
        raise ValueError(f"output layout must be one of {OUTPUT_LAYOUTS}, got {to!r}")
    if source_format not in ("auto",) + DETECTOR_FORMATS:
        raise ValueError(f"a detector conversion reads {('auto',) + DETECTOR_FORMATS}, got {source_format!r}")
    check_output_file(src, dst)
    obj = read_checkpoint(src)
    state, _ = find_state_dict(obj)
    if state is None:
        found = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{src}: no state dict found (found {found})")
    refuse_nonfinite(state, src, "converted")
    model = _build_detector(config_file, overrides, num_classes_in(state))
    detected = detect_init_format(obj, model)
    if detected not in DETECTOR_FORMATS:
        raise CheckpointError(f"{src} is a pre-trained backbone ('{detected}'), not a detector: convert it with "
                              f"--from {detected} (no config), or point train.init_checkpoint at it")
    report = load_init_checkpoint(model, obj, format=source_format, strict=True, source=src)
    if to == "detectron2":
        save_detectron2_checkpoint(to_detectron2(model), dst)
    else:
        atomic_torch_save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, dst)
    logger.info("wrote %s (%s layout, %d tensors)", dst, to, len(model.state_dict()))
    return report


def convert_method_file(src: str, dst: str, to: str) -> dict[str, Any]:
    """Write a pre-training run's whole model in an official repository's layout.

    Args:
        src: a run's checkpoint (``model_final.pth`` / ``model_NNNNNNN.pth`` of ``tools/pretrain_net.py``).
        dst: the official file to write.
        to: one of :data:`~.formats.WRITABLE_LAYOUTS` (``mae``, ``beit``, ``mocov3``, ``deit``, ``convmae``).

    Returns:
        the object written (see :func:`~.method.to_official`).

    Raises:
        CheckpointError: naming ``src``: not a run checkpoint (a backbone export holds the encoder
            only), or not a run of the method ``to`` names.
    """
    check_output_file(src, dst)
    obj = read_checkpoint(src)
    state, _ = find_state_dict(obj)
    if isinstance(obj, dict) and obj.get("format") == EXPORT_TAG:
        raise CheckpointError(f"{src} is a backbone export (the encoder only); convert the run's model_final.pth, "
                              "which holds the whole method")
    if state is None or not any(k.startswith(("encoder.vit.", "encoder.convvit.")) for k in state):
        found = sorted(state or obj)[:8] if isinstance(state or obj, dict) else type(obj).__name__
        raise CheckpointError(f"{src}: not a pre-training run's checkpoint of this project (expected encoder.vit.* "
                              f"or encoder.convvit.* names), found {found}")
    refuse_nonfinite(state, src, "converted")
    official = to_official(state, to, src)
    atomic_torch_save(official, dst)
    layout = METHOD_LAYOUTS[to]
    weights, _ = find_state_dict(official)
    logger.info("wrote %s: %d tensors in %s's layout (%s); continue with %s", dst, len(weights), get_format(to).label,
                ", ".join(k for k in official if k != layout.container) or "weights only", layout.resume)
    return official
