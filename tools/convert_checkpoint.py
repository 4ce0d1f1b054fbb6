#!/usr/bin/env python
"""Convert a pre-trained ViT checkpoint into the project's backbone format.

    python tools/convert_checkpoint.py --from {mae,mocov3,beit,deit,timm,auto} IN OUT [--patch-size 16]

Reads MAE (encoder-only, ``_full`` and fine-tuned), MoCo v3 (``state_dict`` with
``module.base_encoder.``), BEiT (pre-trained with a shared bias table, or fine-tuned per layer),
DeiT and timm files with ``torch.load(weights_only=True)``; keeps what a detection backbone uses,
in the detection ViT's names; and writes ``{"format", "version", "model", "meta"}``. Detection
training loads either the original or the converted file through ``train.init_checkpoint``;
converting first makes the file small, safe to share and explicit about what it holds.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from timm.layers import resample_patch_embed  # noqa: E402

from vitdet_bench.checkpoint import FORMATS, CheckpointError, safe_torch_load, save_backbone_export, to_canonical  # noqa: E402
from vitdet_bench.utils.cli import CommandLineParser  # noqa: E402


def _plain(value):
    """JSON-like copy of a saved ``args`` value (so the output loads with weights_only=True)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = CommandLineParser(description=__doc__.split("\n\n")[0], overrides=False)
    parser.add_argument("--from", dest="format", default="auto", choices=("auto",) + tuple(f for f in FORMATS if f != "vitdet_bench"),
                        help="the input's format ('auto' detects it from the container and key names)")
    parser.add_argument("--patch-size", type=int, default=None,
                        help="resample the patch-embed kernel to this patch size (e.g. 16 for ViT-H/14)")
    parser.add_argument("input")
    parser.add_argument("output")
    args = parser.parse_args(argv)

    try:
        obj = safe_torch_load(args.input)
        ckpt = to_canonical(obj, args.format)
    except CheckpointError as e:
        print(f"error: {args.input}: {e}", file=sys.stderr)
        return 1
    state = ckpt.state
    meta = {"source_file": os.path.abspath(args.input), "source_format": ckpt.format}
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
    meta["rel_pos_bias"] = ("shared" if "rel_pos_bias.relative_position_bias_table" in state else
                            "per_block" if any(k.endswith("attn.relative_position_bias_table") for k in state) else None)
    saved_args = obj.get("args") if isinstance(obj, dict) else None
    if isinstance(saved_args, argparse.Namespace):
        meta["source_args"] = {k: _plain(v) for k, v in vars(saved_args).items()}
    for key in ("epoch", "arch"):
        if isinstance(obj, dict) and isinstance(obj.get(key), (int, str)):
            meta[f"source_{key}"] = obj[key]
    if args.patch_size and weight is not None and weight.shape[-1] != args.patch_size:
        state["patch_embed.proj.weight"] = resample_patch_embed(weight, [args.patch_size] * 2, interpolation="bicubic",
                                                                antialias=True)
        print(f"resampled patch_embed.proj.weight {tuple(weight.shape)} -> {tuple(state['patch_embed.proj.weight'].shape)}")
        meta["patch_size"] = args.patch_size
        meta["patch_embed_resampled_from"] = int(weight.shape[-1])
    save_backbone_export(state, args.output, meta)
    print(f"{args.input}: format {ckpt.format}; kept {len(state)} tensors "
          f"({sum(v.numel() for v in state.values()) / 1e6:.2f}M values) for the backbone")
    for why, n in sorted(ckpt.dropped.items()):
        print(f"  dropped {n:5d} tensors: {why}")
    for src, dst in ckpt.renamed:
        print(f"  renamed {src} -> {dst}")
    print(f"wrote {args.output}  meta: {meta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
