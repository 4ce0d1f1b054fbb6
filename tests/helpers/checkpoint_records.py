"""What every checkpoint format loads: one record per format fixture, to compare across refactors.

Each case writes a small, seeded checkpoint in one format (the official containers and names of MAE,
MoCo v3, BEiT, DeiT, timm, MAE-Lite, ConvMAE, open_clip; this project's backbone exports, run
checkpoints and detector files; Detectron2's ``.pth`` and model-zoo ``.pkl``), reads it through the
public loaders (a backbone, a detector's ``train.init_checkpoint``, a whole pre-training method, a
teacher, the converters and the official writers) and records what came out: the load report
(loaded, resized, converted, dropped, missing as expected and unexpectedly, unused, its summary
text), a fingerprint of every tensor of the model after the load, and error messages. The files
are built here from timm's models and plain renames, not by the code under test (except the
official files of the writable layouts, which are ``to_official``'s output and recorded as such).

``tests/fixtures/checkpoint_format_records.json`` holds the record made before the checkpoint
formats moved into ``vitdet_bench/checkpoint/formats/``; ``tests/checkpoint/test_format_records.py``
checks that the loaders still produce it. Regenerate it (only when a change of behaviour is
intended) with ``PYTHONPATH=. python tests/helpers/checkpoint_records.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
from typing import Any, Callable

import torch
import torch.nn as nn
from timm.models.beit import Beit
from timm.models.vision_transformer import Block, VisionTransformer

from vitdet_bench.checkpoint import (
    CheckpointError,
    convert_backbone_file,
    detect_format,
    load_backbone_checkpoint,
    load_init_checkpoint,
    read_checkpoint,
    save_backbone_export,
    save_detectron2_checkpoint,
    to_canonical,
    to_detectron2,
    to_official,
)
from vitdet_bench.config import LazyConfig, instantiate
from vitdet_bench.modeling import ViT
from vitdet_bench.pretrain import (
    MAE,
    BEiT,
    ConvMAE,
    FastConvMAE,
    MAELite,
    MoCoV3,
    SupervisedViT,
    build_convmae_encoder,
    build_pretrain_encoder,
    build_teacher,
)

from .official import randomize

__all__ = ["RECORD_FILE", "compare_records", "make_records"]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECORD_FILE = os.path.join(REPO, "tests", "fixtures", "checkpoint_format_records.json")

IMG, DIM, DEPTH, HEADS = 96, 64, 2, 4
GRID = IMG // 16


class _StubTokenizer(nn.Module):
    """BEiT's tokenizer interface, frozen and weightless (the loads never run it)."""

    patch_size = 16
    vocab_size = 32

    def get_codebook_indices(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        return torch.zeros(n, h // 16, w // 16, dtype=torch.long)


def _seeded(build: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build()


# --- the files ---------------------------------------------------------------------------------------

def timm_vit(img: int = IMG, patch: int = 16, dim: int = DIM, depth: int = DEPTH, heads: int = HEADS,
             classes: int = 10, seed: int = 1) -> VisionTransformer:
    m = VisionTransformer(img_size=img, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads,
                          num_classes=classes)
    return randomize(m, seed).eval()


def mae_decoder(dim: int = DIM, dec: int = 32, grid: int = GRID, seed: int = 3) -> dict[str, torch.Tensor]:
    """``models_mae``'s decoder, mask token and prediction head (one block)."""
    g = torch.Generator().manual_seed(seed)
    block = randomize(Block(dec, 2, 4.0, qkv_bias=True), seed)
    out = {"mask_token": torch.randn(1, 1, dec, generator=g),
           "decoder_embed.weight": torch.randn(dec, dim, generator=g),
           "decoder_embed.bias": torch.randn(dec, generator=g),
           "decoder_pos_embed": torch.randn(1, grid * grid + 1, dec, generator=g),
           "decoder_norm.weight": torch.randn(dec, generator=g), "decoder_norm.bias": torch.randn(dec, generator=g),
           "decoder_pred.weight": torch.randn(768, dec, generator=g),
           "decoder_pred.bias": torch.randn(768, generator=g)}
    out.update({f"decoder_blocks.0.{k}": v for k, v in block.state_dict().items()})
    return out


def vit_files() -> dict[str, Any]:
    """The same timm ViT in each official container."""
    state = timm_vit().state_dict()
    enc = {k: v for k, v in state.items() if not k.startswith("head.")}
    moco: dict[str, Any] = {"epoch": 300, "arch": "vit_base", "optimizer": {"state": {}, "param_groups": []},
                            "state_dict": {}}
    for k, v in enc.items():
        moco["state_dict"]["module.base_encoder." + k] = v
        moco["state_dict"]["module.momentum_encoder." + k] = v + 1.0
    for i in (0, 1):
        moco["state_dict"][f"module.base_encoder.head.{i}.weight"] = torch.full((8,), float(i))
        moco["state_dict"][f"module.momentum_encoder.head.{i}.weight"] = torch.full((8,), float(i) + 1)
    moco["state_dict"]["module.predictor.0.weight"] = torch.ones(8, 8)
    maelite_model = {**enc, **mae_decoder()}
    maelite = {"start_epoch": 400, "optimizer": {"state": {}, "param_groups": []}, "model": {}}
    maelite["model"].update({f"module.model.{k}": v for k, v in maelite_model.items()})
    maelite["model"].update({f"module.tch_model.{k}": v * 2 for k, v in enc.items()})
    maelite["model"]["module.attn_adapter.adapter1.weight"] = torch.ones(HEADS, HEADS, 1, 1)
    return {
        "mae": {"model": {**enc, **mae_decoder()}, "epoch": 799,
                "args": argparse.Namespace(model="mae_vit_base_patch16", norm_pix_loss=True)},
        "mae_encoder_only": {"model": dict(enc)},
        "mae_finetuned": {"model": {("fc_norm." + k[5:] if k.startswith("norm.") else k): v for k, v in state.items()}},
        "deit": {"model": dict(state), "args": argparse.Namespace(model="deit_base_patch16_224")},
        "mocov3": moco,
        "timm": dict(state),
        "timm_ddp": {"module." + k: v for k, v in state.items()},
        "maelite": maelite,
        "timm_patch8": {k: v for k, v in timm_vit(img=64, patch=8).state_dict().items() if not k.startswith("head")},
    }


def timm_beit(shared: bool, seed: int = 2) -> Beit:
    m = Beit(img_size=IMG, patch_size=16, embed_dim=DIM, depth=DEPTH, num_heads=HEADS, num_classes=10,
             use_abs_pos_emb=False, use_rel_pos_bias=not shared, use_shared_rel_pos_bias=shared, init_values=0.1)
    return randomize(m, seed).eval()


def beit_file(shared: bool) -> dict:
    """An official BEiT file: pre-trained (shared table, mask token, lm head) or fine-tuned (per block)."""
    m = timm_beit(shared)
    state = dict(m.state_dict())
    for i, blk in enumerate(m.blocks):
        if blk.attn.relative_position_bias_table is not None:
            state[f"blocks.{i}.attn.relative_position_index"] = blk.attn.relative_position_index
    if m.rel_pos_bias is not None:
        state["rel_pos_bias.relative_position_index"] = m.rel_pos_bias.relative_position_index
        state["mask_token"] = torch.full((1, 1, DIM), 0.5)
        state["lm_head.weight"] = torch.full((32, DIM), 0.25)
        state.pop("head.weight")
        state.pop("head.bias")
    return {"model": state, "args": argparse.Namespace(layer_scale_init_value=0.1)}


def openclip_state(width: int = 32, depth: int = 2, patch: int = 8, img: int = 32, out: int = 24) -> dict:
    """An open_clip image tower (``visual.*``) and one text-tower tensor the teacher leaves out."""
    g = torch.Generator().manual_seed(5)
    n = (img // patch) ** 2 + 1
    s: dict[str, torch.Tensor] = {
        "visual.conv1.weight": torch.randn(width, 3, patch, patch, generator=g) * 0.05,
        "visual.class_embedding": torch.randn(width, generator=g),
        "visual.positional_embedding": torch.randn(n, width, generator=g),
        "visual.ln_pre.weight": torch.randn(width, generator=g), "visual.ln_pre.bias": torch.randn(width, generator=g),
        "visual.ln_post.weight": torch.randn(width, generator=g),
        "visual.ln_post.bias": torch.randn(width, generator=g),
        "visual.proj": torch.randn(width, out, generator=g),
        "token_embedding.weight": torch.randn(10, width, generator=g),
    }
    for i in range(depth):
        p = f"visual.transformer.resblocks.{i}."
        for name, shape in (("ln_1.weight", (width,)), ("ln_1.bias", (width,)), ("ln_2.weight", (width,)),
                            ("ln_2.bias", (width,)), ("attn.in_proj_weight", (3 * width, width)),
                            ("attn.in_proj_bias", (3 * width,)), ("attn.out_proj.weight", (width, width)),
                            ("attn.out_proj.bias", (width,)), ("mlp.c_fc.weight", (4 * width, width)),
                            ("mlp.c_fc.bias", (4 * width,)), ("mlp.c_proj.weight", (width, 4 * width)),
                            ("mlp.c_proj.bias", (width,))):
            s[p + name] = torch.randn(*shape, generator=g) * 0.1
    return s


# --- the models --------------------------------------------------------------------------------------

def vit(**kw: Any) -> ViT:
    args = dict(img_size=IMG, patch_size=16, embed_dim=DIM, depth=DEPTH, num_heads=HEADS, pretrain_img_size=IMG)
    args.update(kw)
    return _seeded(lambda: ViT(**args))


def _encoder(**kw: Any):
    args = dict(img_size=64, embed_dim=32, depth=2, num_heads=2)
    args.update(kw)
    return build_pretrain_encoder("vit_t", **args)


def methods() -> dict[str, Callable[[], nn.Module]]:
    """Small pre-training models, built anew (seeded) for every load."""
    def beit_enc():
        return _encoder(pos_embed="none", rel_pos_bias="shared", init_values=0.1, qv_bias=True)

    def convmae(cls=ConvMAE):
        enc = build_convmae_encoder(img_size=224, embed_dims=(8, 12, 16), depths=(1, 1, 2), num_heads=2)
        return cls(enc, decoder_dim=16, decoder_depth=1, decoder_num_heads=2)

    return {
        "mae": lambda: MAE(_encoder(pos_embed="sincos"), decoder_dim=16, decoder_depth=1, decoder_num_heads=2),
        "mocov3": lambda: MoCoV3(_encoder(pos_embed="sincos", freeze_patch_embed=True), dim=8, mlp_dim=16),
        "beit": lambda: BEiT(beit_enc(), _StubTokenizer()),
        "supervised": lambda: SupervisedViT(_encoder(), num_classes=5, mixup_alpha=0.0, cutmix_alpha=0.0),
        "supervised_3": lambda: SupervisedViT(_encoder(), num_classes=3, mixup_alpha=0.0, cutmix_alpha=0.0),
        "maelite": lambda: MAELite(_encoder(pos_embed="sincos"), decoder_dim=16, decoder_depth=1, decoder_num_heads=2),
        "convmae": convmae,
        "fastconvmae": lambda: convmae(FastConvMAE),
    }


def detector(config: str) -> nn.Module:
    cfg = LazyConfig.load(os.path.join(REPO, config))
    cfg.model.num_classes = 4
    return _seeded(lambda: instantiate(cfg.model))


VIT_DETECTOR = "configs/demo/bench_vit_tiny.py"
CONVVIT_DETECTOR = "configs/demo/bench_convvit_tiny.py"


# --- recording ---------------------------------------------------------------------------------------

def _fingerprint(t: torch.Tensor) -> list:
    d = t.detach().double()
    return [list(t.shape), float(d.sum()), float(d.abs().sum())]


def _digest(state: dict[str, torch.Tensor]) -> str:
    """The exact bytes of every tensor (compared on one machine only: interpolation may round
    differently elsewhere)."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _text_digest(items: Any) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:16]


def _state_record(state: dict[str, torch.Tensor]) -> dict:
    """A model's floating-point tensors: their names (a digest), and each one's sum of absolute
    values in name order (compared within 1e-5)."""
    keys = sorted(k for k, v in state.items() if v.is_floating_point())
    return {"count": len(keys), "keys": _text_digest(keys),
            "abs_sums": [float(f"{float(state[k].detach().double().abs().sum()):.9g}") for k in keys]}


class _Recorder:
    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.records: dict[str, Any] = {}

    def clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(self.tmp, "TMP")
        if isinstance(value, dict):
            return {str(k): self.clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.clean(v) for v in value]
        if isinstance(value, torch.Tensor):
            return _fingerprint(value)
        return value

    def path(self, name: str, obj: Any) -> str:
        path = os.path.join(self.tmp, name)
        torch.save(obj, path)
        return path

    def run(self, case: str, call: Callable[[], Any], model: nn.Module | None = None) -> None:
        """Record ``call()`` (a report, a dict, a state) and the model's tensors after it, or its error."""
        try:
            result = call()
        except (CheckpointError, ValueError, KeyError, RuntimeError) as e:
            self.records[case] = {"error": f"{type(e).__name__}: {self.clean(str(e))}"}
            return
        entry: dict[str, Any] = {}
        if hasattr(result, "summary"):
            r = result
            summary = self.clean(r.summary())
            # Long lists (every tensor loaded, a detector's neck and heads missing as expected) and
            # the summary's table as digests; everything else as it is.
            entry["report"] = self.clean({
                "format": r.format, "origin": r.origin, "kind": r.kind, "ok": r.ok,
                "loaded": [len(r.loaded), _text_digest(sorted(r.loaded))],
                "resized": sorted([k, list(a), list(b)] for k, a, b in r.resized),
                "converted": [list(c) for c in r.converted],
                "missing_expected": [len(r.missing_expected), _text_digest(sorted(r.missing_expected))],
                "missing_unexpected": sorted(r.missing_unexpected), "dropped": dict(sorted(r.dropped.items())),
                "unused": [list(u) for u in r.unused], "summary": [summary.split("\n")[0], _text_digest(summary)]})
        elif isinstance(result, dict) and result and all(isinstance(v, torch.Tensor) for v in result.values()):
            entry["tensors"] = _state_record(result)
            entry["digest"] = _digest(result)
        elif result is not None:
            entry["value"] = self.clean(result)
        if model is not None:
            state = model.state_dict()
            entry["model"] = _state_record(state)
            entry["model_digest"] = _digest(state)
        self.records[case] = entry


def _canonical(obj: Any, format: str = "auto") -> dict:
    ckpt = to_canonical(obj, format)
    return {"format": ckpt.format, "state": _state_record(ckpt.state),
            "dropped": dict(sorted(ckpt.dropped.items())), "extras": sorted(ckpt.extras),
            "renamed": [list(r) for r in ckpt.renamed], "meta": ckpt.meta}


def _official(obj: dict) -> dict:
    """An official file (to_official's output) as plain data: tensors fingerprinted."""
    return {k: ({n: list(t.shape) for n, t in sorted(v.items())} | {"_values": _state_record(v)}
                if k in ("model", "state_dict") else v) for k, v in obj.items()}


def _backbone_cases(rec: _Recorder, files: dict[str, Any]) -> None:
    for name, obj in files.items():
        path = rec.path(f"{name}.pth", obj)
        rec.run(f"detect/{name}", lambda: detect_format(read_checkpoint(path)))
        rec.run(f"canonical/{name}", lambda: _canonical(read_checkpoint(path)))
        model = vit(use_rel_pos=True)
        rec.run(f"backbone/{name}", lambda: load_backbone_checkpoint(model, path), model)
    patch8 = rec.path("timm_patch8.pth", {"model": files["timm_patch8"]})
    for resize in (False, True):
        model = vit(pretrain_img_size=IMG)
        rec.run(f"backbone/timm_patch8_resize_{resize}",
                lambda: load_backbone_checkpoint(model, patch8, resize_patch_embed=resize), model)
    mae = rec.path("mae.pth", files["mae"])
    for fmt in ("deit", "timm", "mocov3", "beit", "vitdet_bench", "bogus"):
        model = vit()
        rec.run(f"backbone/mae_as_{fmt}", lambda: load_backbone_checkpoint(model, mae, format=fmt), model)
    model = vit(init_values=0.1)
    rec.run("backbone/mae_strict_fails", lambda: load_backbone_checkpoint(model, mae, strict=True), model)


def _beit_cases(rec: _Recorder) -> None:
    targets = {
        "per_block": dict(rel_pos_bias="per_block", qv_bias=True, init_values=0.1, use_abs_pos=False),
        "shared": dict(rel_pos_bias="shared", qv_bias=True, init_values=0.1, use_abs_pos=False),
        "fused_folded": dict(rel_pos_bias="per_block", qkv_bias=True, init_values=None, use_abs_pos=False),
        "none": dict(rel_pos_bias=None, qv_bias=True, init_values=0.1, use_abs_pos=False),
        "detector_windows": dict(img_size=192, window_size=3, window_block_indexes=[0], rel_pos_bias="shared",
                                 qv_bias=True, init_values=0.1, use_abs_pos=True),
        "linear_resize": dict(img_size=192, window_size=3, window_block_indexes=[0], rel_pos_bias="per_block",
                              qv_bias=True, init_values=0.1, use_abs_pos=False),
        "cls_rows": dict(rel_pos_bias="shared", rel_pos_cls_token=True, qv_bias=True, init_values=0.1,
                         use_abs_pos=False),
    }
    for shared in (False, True):
        name = "beit_pretrained" if shared else "beit_finetuned"
        path = rec.path(f"{name}.pth", beit_file(shared))
        rec.run(f"detect/{name}", lambda: detect_format(read_checkpoint(path)))
        rec.run(f"canonical/{name}", lambda: _canonical(read_checkpoint(path)))
        for target, kw in targets.items():
            model = vit(**kw)
            mode = "linear" if target == "linear_resize" else "cubic"
            rec.run(f"backbone/{name}_into_{target}", lambda: load_backbone_checkpoint(model, path,
                                                                                      rel_pos_resize=mode), model)


def _export_cases(rec: _Recorder, files: dict[str, Any]) -> None:
    for method in ("mae", "mocov3", "beit", "supervised", "maelite"):
        model = randomize(methods()[method](), 7)
        path = os.path.join(rec.tmp, f"export_{method}.pth")
        save_backbone_export(model.export_state(), path, model.export_meta())
        rec.run(f"export_file/{method}", lambda: read_checkpoint(path)["model"])
        rec.run(f"canonical/export_{method}", lambda: _canonical(read_checkpoint(path)))
        beit = method == "beit"
        kw = dict(rel_pos_bias="shared", qv_bias=True, init_values=0.1, use_abs_pos=True) if beit else {}
        target = vit(img_size=64, embed_dim=32, depth=2, num_heads=2, pretrain_img_size=64, use_rel_pos=not beit,
                     **kw)
        rec.run(f"backbone/export_{method}", lambda: load_backbone_checkpoint(target, path), target)
        det = detector(VIT_DETECTOR)
        rec.run(f"init/export_{method}_into_detector", lambda: load_init_checkpoint(det, path, strict=False), det)
    for name in ("mocov3", "beit_pretrained", "maelite", "timm", "deit"):
        src = os.path.join(rec.tmp, f"{name}.pth")
        dst = os.path.join(rec.tmp, f"converted_{name}.pth")
        rec.run(f"convert/{name}", lambda: {k: v for k, v in convert_backbone_file(src, dst).items()
                                            if k != "source_file"})
        rec.run(f"convert_file/{name}", lambda: read_checkpoint(dst)["model"])
        beit = name.startswith("beit")
        kw = dict(rel_pos_bias="shared", qv_bias=True, init_values=0.1, use_abs_pos=False) if beit else {}
        model = vit(**kw)
        rec.run(f"backbone/converted_{name}", lambda: load_backbone_checkpoint(model, dst), model)


def _detector_cases(rec: _Recorder, files: dict[str, Any]) -> None:
    source = randomize(detector(VIT_DETECTOR), 11)
    own = rec.path("detector.pth", {"model": source.state_dict(), "iteration": 9})
    d2 = to_detectron2(source)
    rec.run("to_detectron2", lambda: d2)
    d2_pth = os.path.join(rec.tmp, "d2.pth")
    d2_pkl = os.path.join(rec.tmp, "d2.pkl")
    save_detectron2_checkpoint(d2, d2_pth)
    save_detectron2_checkpoint(d2, d2_pkl)
    no_neck = rec.path("d2_no_neck.pth", {"model": {k: v for k, v in d2.items() if "fpn" not in k}})
    for name, path in (("detector", own), ("detectron2_pth", d2_pth), ("detectron2_pkl", d2_pkl),
                       ("detectron2_no_neck", no_neck)):
        det = detector(VIT_DETECTOR)
        rec.run(f"init/{name}", lambda: load_init_checkpoint(det, path, strict=False), det)
        cfg = LazyConfig.load(os.path.join(REPO, VIT_DETECTOR))
        backbone = _seeded(lambda: instantiate(cfg.model.backbone.bottom_up.net))
        rec.run(f"backbone/{name}_vit", lambda: load_backbone_checkpoint(backbone, path), backbone)
        rec.run(f"detect/{name}", lambda: detect_format(read_checkpoint(path)))
    det = detector(VIT_DETECTOR)
    rec.run("init/detectron2_no_neck_strict", lambda: load_init_checkpoint(det, no_neck), det)
    det = detector("configs/demo/mask_rcnn_vit_tiny.py")  # another input size and no bias tables
    rec.run("init/detector_into_another_detector", lambda: load_init_checkpoint(det, own, strict=False), det)
    for name in ("mae", "timm", "mocov3"):
        state = timm_vit(img=128, dim=96, depth=4, heads=3).state_dict()
        obj = {"model": {k: v for k, v in state.items() if not k.startswith("head")}} if name == "mae" else state
        if name == "mocov3":
            obj = {"state_dict": {"module.base_encoder." + k: v for k, v in state.items()}}
        path = rec.path(f"demo_{name}.pth", obj)
        det = detector(VIT_DETECTOR)
        rec.run(f"init/{name}_into_detector", lambda: load_init_checkpoint(det, path), det)
    path = os.path.join(rec.tmp, "beit_pretrained.pth")
    det = detector(VIT_DETECTOR)
    rec.run("init/beit_into_detector_of_another_width", lambda: load_init_checkpoint(det, path), det)
    for fmt in ("detectron2", "detector", "convmae", "nonsense"):
        det = detector(VIT_DETECTOR)
        rec.run(f"init/mae_as_{fmt}", lambda: load_init_checkpoint(det, os.path.join(rec.tmp, "demo_mae.pth"),
                                                                    format=fmt), det)


def _convmae_official(model: nn.Module) -> dict[str, torch.Tensor]:
    """ConvMAE's official names for a ConvMAE model here: the ConvViT and its fusion convs at the top
    level (models_convmae.MaskedAutoencoderConvViT), written by hand."""
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("encoder.convvit."):
            out[k[len("encoder.convvit."):]] = v
        elif k.startswith("encoder."):
            out[k[len("encoder."):]] = v
        else:
            out[k] = v
    return out


def _convvit_cases(rec: _Recorder) -> None:
    model = randomize(methods()["convmae"](), 13)
    official = {"model": _convmae_official(model), "epoch": 1599}
    path = rec.path("convmae.pth", official)
    ddp = rec.path("convmae_ddp.pth", {"model": {"module." + k: v for k, v in official["model"].items()}})
    rec.run("detect/convmae", lambda: sorted(official["model"]))
    for name, p in (("convmae", path), ("convmae_ddp", ddp)):
        target = methods()["convmae"]()
        rec.run(f"backbone/{name}_into_convvit", lambda: load_backbone_checkpoint(target.encoder.convvit, p),
                target.encoder.convvit)
        for method in ("convmae", "fastconvmae"):
            target = methods()[method]()
            rec.run(f"method/{name}_into_{method}", lambda: load_init_checkpoint(target, p), target)
    demo = _seeded(lambda: ConvMAE(build_convmae_encoder(img_size=128, embed_dims=(32, 48, 96), depths=(2, 2, 3),
                                                        num_heads=3), decoder_dim=16, decoder_depth=1,
                                   decoder_num_heads=2))
    randomize(demo, 17)
    demo_official = rec.path("convmae_demo.pth", {"model": _convmae_official(demo)})
    export = os.path.join(rec.tmp, "export_convmae.pth")
    save_backbone_export(demo.export_state(), export, demo.export_meta())
    for name, p in (("convmae", demo_official), ("export_convmae", export)):
        det = detector(CONVVIT_DETECTOR)
        rec.run(f"init/{name}_into_convvit_detector", lambda: load_init_checkpoint(det, p), det)
    mae_path = os.path.join(rec.tmp, "mae.pth")
    for name, build in (("convvit_detector", lambda: detector(CONVVIT_DETECTOR)),
                        ("convmae_method", methods()["convmae"])):
        target = build()
        rec.run(f"init/mae_into_{name}", lambda: load_init_checkpoint(target, mae_path), target)
    target = methods()["mae"]()
    rec.run("method/convmae_into_mae", lambda: load_init_checkpoint(target, path), target)
    det = detector(VIT_DETECTOR)
    rec.run("init/convmae_into_vit_detector", lambda: load_init_checkpoint(det, demo_official), det)
    rec.run("official/convmae", lambda: _official(to_official(model.state_dict(), "convmae")))


def _official_file(method: str, layout: str, seed: int) -> tuple[nn.Module, dict]:
    model = randomize(methods()[method](), seed)
    return model, to_official(model.state_dict(), layout)


def _method_cases(rec: _Recorder) -> None:
    pairs = (("mae", "mae"), ("mocov3", "mocov3"), ("beit", "beit"), ("supervised", "deit"))
    for i, (method, layout) in enumerate(pairs):
        model, official = _official_file(method, layout, 20 + i)
        rec.run(f"official/{layout}", lambda: _official(official))
        path = rec.path(f"official_{layout}.pth", official)
        rec.run(f"detect/official_{layout}", lambda: detect_format(read_checkpoint(path)))
        for target_name in methods():
            if target_name.startswith(("convmae", "fastconvmae")):
                continue
            target = methods()[target_name]()
            rec.run(f"method/{layout}_into_{target_name}", lambda: load_init_checkpoint(target, path, strict=False),
                    target)
        target = methods()[method]()
        rec.run(f"method/{layout}_into_{method}_strict", lambda: load_init_checkpoint(target, path), target)
        run_ckpt = rec.path(f"run_{method}.pth", {"model": model.state_dict(), "iteration": 4})
        for target_name in ("mae", "mocov3", method):
            target = methods()[target_name]()
            rec.run(f"method/run_{method}_into_{target_name}", lambda: load_init_checkpoint(target, run_ckpt,
                                                                                          strict=False), target)
        for bad in ("mocov3", "beit", "convmae", "vitdet", "bogus"):
            target = methods()[method]()
            rec.run(f"method/{layout}_as_{bad}", lambda: load_init_checkpoint(target, path, format=bad), target)
    mae_model = randomize(methods()["mae"](), 30)
    mae_official = {"model": {k.replace("encoder.vit.", "").replace("encoder.", ""): v
                              for k, v in mae_model.state_dict().items()}}
    enc_only = {"model": {k: v for k, v in mae_official["model"].items() if not k.startswith(("decoder", "mask"))}}
    flat = {k: v for k, v in _official_file("supervised", "deit", 31)[1]["model"].items()}
    maelite = {"start_epoch": 400, "model": {f"module.model.{k}": v for k, v in mae_official["model"].items()}}
    maelite_distill = {"model": {**maelite["model"], **{f"module.tch_model.{k}": v * 2
                                                         for k, v in enc_only["model"].items()}},
                       "start_epoch": 3}
    maelite_distill["model"]["module.attn_adapter.adapter1.weight"] = torch.ones(2, 2, 1, 1)
    export = os.path.join(rec.tmp, "export_method_mae.pth")
    save_backbone_export(mae_model.export_state(), export, mae_model.export_meta())
    files = {"mae_encoder_only": rec.path("m_enc.pth", enc_only), "timm_flat": rec.path("m_flat.pth", flat),
             "maelite": rec.path("m_maelite.pth", maelite),
             "maelite_distill": rec.path("m_distill.pth", maelite_distill),
             "export_mae": export}
    for name, path in files.items():
        for target_name in ("mae", "mocov3", "supervised", "supervised_3", "maelite"):
            target = methods()[target_name]()
            rec.run(f"method/{name}_into_{target_name}", lambda: load_init_checkpoint(target, path, strict=False),
                    target)
        target = methods()["mae"]()
        rec.run(f"method/{name}_into_mae_strict", lambda: load_init_checkpoint(target, path), target)
    teacher_model = randomize(_seeded(lambda: MAE(_encoder(embed_dim=24, depth=1, num_heads=3, pos_embed="sincos"),
                                                   decoder_dim=16, decoder_depth=1, decoder_num_heads=2)), 33)
    teacher_path = os.path.join(rec.tmp, "teacher_export.pth")
    save_backbone_export(teacher_model.export_state(), teacher_path, teacher_model.export_meta())
    for name in ("maelite", "maelite_distill"):
        target = _seeded(lambda: MAELite(_encoder(pos_embed="sincos"), teacher=build_teacher(teacher_path, 64),
                                         decoder_dim=16, decoder_depth=1, decoder_num_heads=2))
        rec.run(f"method/{name}_into_maelite_with_teacher", lambda: load_init_checkpoint(target, files[name]), target)
    for layout in ("mae", "beit", "mocov3", "deit", "convmae", "maelite", "timm"):
        rec.run(f"official/mae_model_to_{layout}", lambda: _official(to_official(mae_model.state_dict(), layout)))


def _teacher_cases(rec: _Recorder) -> None:
    clip = openclip_state()
    sources = {"open_clip": rec.path("openclip.pth", clip),
               "open_clip_bare": rec.path("openclip_bare.pth", {k[len("visual."):]: v for k, v in clip.items()
                                                                 if k.startswith("visual.")}),
               "mocov3": os.path.join(rec.tmp, "mocov3.pth"), "mae": os.path.join(rec.tmp, "mae.pth"),
               "deit": os.path.join(rec.tmp, "deit.pth"), "export_mae": os.path.join(rec.tmp, "export_mae.pth"),
               "export_mocov3": os.path.join(rec.tmp, "export_mocov3.pth"),
               "beit": os.path.join(rec.tmp, "beit_finetuned.pth")}
    for name, path in sources.items():
        size = 64 if name.startswith("export") else 32 if name.startswith("open_clip") else IMG

        def build(p=path, s=size, n=name):
            t = build_teacher(p, image_size=s, act="quick_gelu" if n.startswith("open_clip") else "gelu")
            return {**{k: v for k, v in t.state_dict().items()}, "_describe": t.describe()}

        def call(b=build):
            out = b()
            desc = out.pop("_describe")
            return {"describe": desc, "tensors": _state_record(out), "digest": _digest(out)}

        rec.run(f"teacher/{name}", call)


def make_records() -> dict[str, Any]:
    """Every case's record (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        rec = _Recorder(os.path.realpath(tmp))
        files = vit_files()
        _backbone_cases(rec, files)
        _beit_cases(rec)
        _export_cases(rec, files)
        _detector_cases(rec, files)
        _convvit_cases(rec)
        _method_cases(rec)
        _teacher_cases(rec)
        return json.loads(json.dumps(rec.records))


def _close(a: Any, b: Any, where: str, out: list[str], exact: bool) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k.endswith("digest") and not exact:
                continue  # the exact bytes of tensors: compared on one machine only
            if k not in a or k not in b:
                out.append(f"{where}/{k}: only in the {'record' if k in a else 'new run'}")
            else:
                _close(a[k], b[k], f"{where}/{k}", out, exact)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]", out, exact)
    elif isinstance(a, float) and isinstance(b, (int, float)) and not exact:
        if not math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5):
            out.append(f"{where}: {a} != {b}")
    elif a != b:
        out.append(f"{where}: {a!r} != {b!r}")


def compare_records(expected: dict, actual: dict, exact: bool = False) -> list[str]:
    """The differences between two records: tensor sums within 1e-5, everything else equal
    (``exact``: the tensors' bytes and sums equal too, for two records made on one machine)."""
    out: list[str] = []
    _close(expected, actual, "", out, exact)
    return out


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else RECORD_FILE
    records = make_records()
    with open(target, "w", encoding="utf-8") as f:  # one case a line
        f.write("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}"
                                    for k, v in sorted(records.items())) + "\n}\n")
    print(f"wrote {len(records)} records to {target}")
