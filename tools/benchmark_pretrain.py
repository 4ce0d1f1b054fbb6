#!/usr/bin/env python
"""Training-step throughput of each pre-training method against a plain ViT forward + backward.

    python tools/benchmark_pretrain.py --arch vit_t --size 224 --batch 32 --iters 5
    python tools/benchmark_pretrain.py --arch vit_b --device cuda --amp bfloat16 --batch 64

Every row runs the same batch of random images: the method's loss (everything its step computes:
masking, decoder, momentum encoder and both views, the frozen tokenizer or teacher, mixup) and its backward
pass; the reference is the same ViT encoder on all tokens with a sum loss. Images / s is the
median of ``--iters`` timed steps after ``--warmup``; the ratio is against the reference row of
the same process. MoCo v3 counts each image once, although it encodes two views of it twice.

ConvMAE and FastConvMAE run on the ConvViT that matches ``--arch`` (stage widths 1/3, 1/2 and 1 of
the ViT's, 2 + 2 conv blocks and one ViT block fewer: ``vit_b`` gives ConvMAE's ConvViT-B). A
FastConvMAE step encodes 4 complementary views of every image, so one of its epochs does the work
of 4 ConvMAE epochs; the summary under the table compares its cost per epoch with ConvMAE's x 4
(FastConvMAE's claim: less than 4x ConvMAE's, since the conv stages run once per image).
"""

from __future__ import annotations

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402

from vitdet_bench.checkpoint import EXPORT_TAG  # noqa: E402
from vitdet_bench.modeling.backbone import VIT_PRESETS  # noqa: E402
from vitdet_bench.pretrain import (  # noqa: E402
    MAE,
    BEiT,
    BlockMaskGenerator,
    ConvMAE,
    FastConvMAE,
    FeatureMIM,
    MAELite,
    MoCoV3,
    SupervisedViT,
    VQTokenizer,
    build_convmae_encoder,
    build_pretrain_encoder,
    build_teacher,
)
from vitdet_bench.utils.cli import CommandLineParser  # noqa: E402
from vitdet_bench.utils.timing import time_steps  # noqa: E402


def _batch(n: int, size: int, grid: int, keys: tuple[str, ...]) -> list[dict]:
    """``n`` random samples holding ``keys`` (a method's ``batch_keys``), the same for every method."""
    g = torch.Generator().manual_seed(0)
    gen = BlockMaskGenerator(grid, num_masking_patches=int(round(0.4 * grid * grid)),
                             min_num_patches=min(16, grid * grid // 4))
    out = []
    for i in range(n):
        s = {"image": torch.rand(3, size, size, generator=g) * 255, "label": i % 10}
        if "image2" in keys:
            s["image2"] = torch.rand(3, size, size, generator=g) * 255
        if "mask" in keys:
            s["mask"] = torch.from_numpy(gen(np.random.default_rng(i)))
        out.append(s)
    return out


class _PlainStep(torch.nn.Module):
    """The reference: the encoder on all tokens, a sum loss."""

    batch_keys = ("image", "label")

    def __init__(self, encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, batch):
        x = torch.stack([s["image"] for s in batch]).to(next(self.parameters()).device)
        return {"loss": self.encoder((x - 127.5) / 64.0).float().mean()}


def _teacher(arch: str, size: int):
    """A frozen teacher of architecture ``arch`` with random weights (as an in-memory export)."""
    enc = build_pretrain_encoder(arch, img_size=size, pos_embed="sincos")
    meta = {"num_heads": enc.vit.blocks[0].attn.num_heads}
    export = {"format": EXPORT_TAG, "model": enc.export_state(), "meta": meta}
    return build_teacher(export, image_size=size, name=f"random {arch}")


def convvit_sizes(arch: str) -> dict:
    """The ConvViT matching a ViT preset: widths (w/3, w/2, w), depths (2, 2, depth - 1), same heads."""
    vit = VIT_PRESETS[arch]
    w = vit["embed_dim"]
    return dict(embed_dims=(w // 3, w // 2, w), depths=(2, 2, vit["depth"] - 1), num_heads=vit["num_heads"])


def _vit(arch: str, size: int, **kw):
    return build_pretrain_encoder(arch, img_size=size, **kw)


def _convvit(arch: str, size: int):
    return build_convmae_encoder(img_size=size, **convvit_sizes(arch))


def _tokenizer():
    return VQTokenizer(patch_size=16, vocab_size=8192).eval()


def _student(arch: str, size: int):
    return _vit(arch, size, pos_embed="sincos", **({"num_heads": 12} if arch == "vit_t" else {}))  # MAE-Lite's ViT-Tiny


CONVMAE, FASTCONVMAE = "ConvMAE (ConvViT, decoder 512 x 8)", "FastConvMAE (ConvViT, 4 views)"
# The rows of the table: name -> how to build the step at (arch, size) (teacher: a frozen ViT-B or None).
# The batch each row runs holds what its class's batch_keys name; methods with uses_teacher get one.
ROWS = {
    "plain ViT (reference)": (_PlainStep, lambda a, s, t: _PlainStep(_vit(a, s, pos_embed="sincos"))),
    "MAE (decoder 512 x 8)": (MAE, lambda a, s, t: MAE(_vit(a, s, pos_embed="sincos"))),
    "MAE (MAE-Lite decoder 96 x 1)": (MAE, lambda a, s, t: MAE(_vit(a, s, pos_embed="sincos"), decoder_dim=96,
                                                               decoder_depth=1, decoder_num_heads=3)),
    "MoCo v3": (MoCoV3, lambda a, s, t: MoCoV3(_vit(a, s, pos_embed="sincos", freeze_patch_embed=True))),
    "BEiT (VQ tokenizer, 8192 codes)": (BEiT, lambda a, s, t: BEiT(_vit(a, s, pos_embed="none", rel_pos_bias="shared",
                                                                        init_values=0.1, qv_bias=True), _tokenizer())),
    "supervised (mixup + cutmix)": (SupervisedViT, lambda a, s, t: SupervisedViT(_vit(a, s), num_classes=1000)),
    "feature-recon. MIM (ViT-B teacher)": (FeatureMIM, lambda a, s, t: FeatureMIM(_vit(a, s, qv_bias=True), t)),
    "MAE-Lite + attn. distill (ViT-B teacher)": (MAELite, lambda a, s, t: MAELite(
        _student(a, s), t, decoder_dim=96, decoder_depth=1, decoder_num_heads=3)),
    CONVMAE: (ConvMAE, lambda a, s, t: ConvMAE(_convvit(a, s))),
    FASTCONVMAE: (FastConvMAE, lambda a, s, t: FastConvMAE(_convvit(a, s), num_views=4)),
}
METHODS = list(ROWS)


def build(name: str, arch: str, size: int):
    """The training step of row ``name`` (its method's model) at ``arch`` and ``size``."""
    cls, make = ROWS[name]
    return make(arch, size, _teacher("vit_b", size) if getattr(cls, "uses_teacher", False) else None)


def fast_vs_convmae(step_s: dict[str, float], batch: int, num_images: int = 1281167) -> str:
    """FastConvMAE's cost per epoch against ConvMAE's x 4 (both see 4 masked views of every image)."""
    fast, conv = step_s[FASTCONVMAE], step_s[CONVMAE]
    epoch = num_images / batch
    return (f"Per epoch of {num_images} images at batch {batch}: FastConvMAE {fast * epoch / 3600:.2f} h "
            f"({fast:.3f} s / step, 4 views of each image), ConvMAE {conv * epoch / 3600:.2f} h ({conv:.3f} s / step, "
            f"1 view), ConvMAE x 4 (the same 4 views) {4 * conv * epoch / 3600:.2f} h.\nFastConvMAE costs "
            f"{fast / conv:.2f} x ConvMAE per epoch = {fast / (4 * conv):.2f} of ConvMAE x 4 "
            f"(its claim: below 4 x, i.e. below 1).")


def main(argv=None) -> None:
    parser = CommandLineParser(description=__doc__, overrides=False)
    parser.add_argument("--arch", default="vit_t")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", choices=["none", "bfloat16", "float16"], default="none")
    parser.add_argument("--pipeline", nargs="?", const="configs/benchmark/demo.py", default=None, metavar="BENCHMARK",
                        help="instead: each pre-training step of a benchmark file (default configs/benchmark/demo.py) "
                        "timed whole, data included, before (JPEG files, per-image PIL views, fp32) and after (the "
                        "config: memory-mapped pool, its views and autocast); --only then takes step names")
    parser.add_argument("--only", nargs="*", metavar="METHOD", help="subset of the method names (quoted, as listed "
                        "in the table: " + "; ".join(f"'{m}'" for m in METHODS) + ")")
    args = parser.parse_args(argv)
    if args.pipeline:
        return _pipeline(args)
    unknown = [name for name in args.only or [] if name not in METHODS]
    if unknown:
        parser.error(f"--only {', '.join(repr(n) for n in unknown)}: not a method name here; choose from "
                     + "; ".join(f"'{m}'" for m in METHODS))
    device = torch.device(args.device)
    grid = args.size // 16
    rows, ref, step_s = [], None, {}
    for name in args.only or METHODS:
        torch.manual_seed(0)
        model = build(name, args.arch, args.size).to(device).train()
        batch = _batch(args.batch, args.size, grid, model.batch_keys)

        def step() -> None:
            with torch.autocast(device.type, dtype=getattr(torch, args.amp, None), enabled=args.amp != "none"):
                loss = sum(model(batch).values())
            loss.backward()
            model.zero_grad(set_to_none=True)

        times = time_steps(step, args.warmup, args.iters, device)
        t = statistics.median(times)
        step_s[name] = t
        ips = args.batch / t
        ref = ref or ips
        params = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
        rows.append([name, f"{t:.3f}", f"{ips:.1f}", f"{ips / ref:.2f}", f"{params:.2f}"])
        print(f"{name}: {t:.3f} s / step", flush=True)
    print(f"\n{args.arch} at {args.size} px, batch {args.batch}, {args.device}, amp {args.amp}; median of "
          f"{args.iters} steps after {args.warmup} warm-up; torch {torch.__version__}, {torch.get_num_threads()} "
          "threads\n")
    headers = ["method", "s / step", "img / s", "x reference img/s", "trainable params (M)"]
    print(tabulate(rows, headers=headers, tablefmt="github"))
    if CONVMAE in step_s and FASTCONVMAE in step_s:
        sizes = convvit_sizes(args.arch)
        print(f"\nConvViT for {args.arch}: widths {sizes['embed_dims']}, depths {sizes['depths']}, "
              f"{sizes['num_heads']} heads")
        print(fast_vs_convmae(step_s, args.batch))


def _pipeline(args) -> None:
    """``--pipeline``: the before / after table of a benchmark file's pre-training steps."""
    import tempfile

    from vitdet_bench.benchmark.pretrain_throughput import pipeline_report

    with tempfile.TemporaryDirectory(prefix="pretrain_pipeline_") as scratch:
        rows = pipeline_report(args.pipeline, scratch, steps=args.iters, warmup=args.warmup, only=args.only)
    table = [[r["name"], f"{r['before']['images_per_s']:.0f}", f"{r['after']['images_per_s']:.0f}", f"{r['ratio']:.2f}",
              f"{r['before']['data_s_per_step']:.3f}", f"{r['after']['data_s_per_step']:.3f}", r["after"]["amp"]]
             for r in rows]
    print(f"\nPre-training steps of {args.pipeline}, whole steps (data included), median of {args.iters} after "
          f"{args.warmup}; torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(tabulate(table, headers=["step", "before img/s", "after img/s", "after / before", "before loader s/step",
                                   "after loader s/step", "after autocast"], tablefmt="github"))


if __name__ == "__main__":
    main()
