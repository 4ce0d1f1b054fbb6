#!/usr/bin/env python
"""Cost of the ViT backbone's design choices: forward+backward time, peak memory and FLOPs.

    python tools/benchmark_backbone.py [--arch vit_b] [--size 512] [--batch 1] [--iters 3]
                                       [--only NAME ...] [--csv FILE] [--json FILE]

Each variant runs in its own subprocess (so CPU peak memory, read from the process's max RSS, is
that variant's alone; on CUDA it is ``max_memory_allocated``) and is compared with the all-global
ViT measured in the same invocation. FLOPs are fvcore's count of one forward pass (one
multiply-add = one flop, as the ViTDet paper reports them), the same counter as the benchmark
report's (``vitdet_bench.benchmark.flops.count_flops``, fused attention included). Default size:
1024 on a GPU, 512 on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name -> (ViT overrides, neck, autocast dtype). Window blocks and global blocks follow the preset
# (window 14, 4 evenly spaced global blocks) unless overridden.
VARIANTS: dict[str, tuple[dict, str | None, str | None]] = {
    "all-global": (dict(window_block_indexes=[]), None, None),
    "window-only": (dict(window_block_indexes="all"), None, None),
    "window + 4 global": ({}, None, None),
    "window + 4 global, padding tokens masked": (dict(mask_window_padding=True), None, None),
    "window + 4 global, + rel-pos bias (shared tables)": (dict(rel_pos_bias="shared"), None, None),
    "window + 4 global, + decomposed rel-pos": (dict(use_rel_pos=True), None, None),
    "window + 4 global, explicit attention": (dict(use_sdpa=False), None, None),
    "window + 4 global, bf16 autocast": ({}, None, "bfloat16"),
    "all-global, activation checkpointing": (dict(window_block_indexes=[], use_act_checkpoint=True), None, None),
    "window + 4 global, single-scale neck": ({}, "single", None),
    "window + 4 global, multi-scale adapter + FPN": ({}, "multi", None),
}
REFERENCE = "all-global"


def build(arch: str, size: int, overrides: dict, neck: str | None):
    import torch.nn as nn

    from vitdet_bench.modeling import FPN, MultiScaleAdapter, build_vit

    kwargs = dict(img_size=size, drop_path_rate=0.0)
    kwargs.update(overrides)
    if kwargs.get("window_block_indexes") == "all":
        from vitdet_bench.modeling.backbone import VIT_PRESETS

        kwargs["window_block_indexes"] = list(range(VIT_PRESETS[arch]["depth"]))
    vit = build_vit(arch, **kwargs)
    if neck is None:
        return vit
    if neck == "single":
        adapter = MultiScaleAdapter(vit, in_features="last_feat", scale_factors=(1.0,))
        return FPN(adapter, out_channels=256, norm="BN", top_block=False)
    taps = [f"block{i}" for i in vit.out_block_indexes]
    model: nn.Module = FPN(MultiScaleAdapter(vit, in_features=taps), out_channels=256, norm="BN", top_block=True)
    return model


def worker(args: argparse.Namespace) -> dict:
    """Measure one variant in this process; prints one JSON line."""
    import torch

    overrides, neck, amp = VARIANTS[args.worker]
    device = torch.device(args.device)
    torch.manual_seed(0)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = build(args.arch, args.size, overrides, neck).to(device)
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    model.train()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        with torch.autocast(device.type, dtype=getattr(torch, amp or "bfloat16"), enabled=amp is not None):
            out = model(x)
        sum(v.float().square().mean() for v in out.values()).backward()
        model.zero_grad(set_to_none=True)

    from vitdet_bench.benchmark.flops import count_flops
    from vitdet_bench.utils.timing import time_steps

    times = time_steps(step, args.warmup, args.iters, device)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    # Counted after the timed passes so that tracing does not inflate the memory peak.
    flops = count_flops(model.eval(), x[:1]) if not args.no_flops else float("nan")
    return {"name": args.worker, "s_per_iter": statistics.median(times), "peak_mem_mb": peak_mb,
            "gflops": flops / 1e9, "params_m": params / 1e6}


def main(argv: list[str] | None = None) -> int:
    from vitdet_bench.utils.cli import CommandLineParser

    parser = CommandLineParser(description=__doc__.split("\n\n")[0], overrides=False)
    parser.add_argument("--arch", default="vit_b", help="ViT preset (vit_t/s/b/l/h)")
    parser.add_argument("--size", type=int, default=None, help="input side in pixels (1024 on GPU, 512 on CPU)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3, help="timed forward+backward passes (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run (all-global always runs)")
    parser.add_argument("--no-flops", action="store_true", help="skip the fvcore FLOP count")
    parser.add_argument("--csv", default=None, help="also write the table as CSV")
    parser.add_argument("--json", default=None, help="also write the rows as JSON")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.size = args.size or (1024 if args.device == "cuda" else 512)
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0

    names = list(VARIANTS)
    if args.only:
        unknown = [n for n in args.only if n not in VARIANTS]
        if unknown:
            parser.error(f"unknown variants {unknown}; choose from {names}")
        names = [REFERENCE] + [n for n in args.only if n != REFERENCE]
    rows = []
    for name in names:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--arch", args.arch,
               "--size", str(args.size), "--batch", str(args.batch), "--iters", str(args.iters),
               "--warmup", str(args.warmup), "--device", args.device]
        if args.no_flops:
            cmd.append("--no-flops")
        print(f"[benchmark_backbone] {name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            err = proc.stderr.strip().splitlines()[-1:] or ["no output"]
            status = "out of memory" if "out of memory" in proc.stderr.lower() else f"failed: {err[0]}"
            rows.append({"name": name, "status": status})
            continue
        rows.append({**json.loads(line[len("RESULT "):]), "status": "ok"})

    ref = next((r for r in rows if r["name"] == REFERENCE and r["status"] == "ok"), None)
    table = []
    for r in rows:
        if r["status"] != "ok":
            table.append([r["name"], r["status"], "", "", "", "", "", ""])
            continue
        if ref is not None:
            r["time_ratio"] = r["s_per_iter"] / ref["s_per_iter"]
            r["mem_ratio"] = r["peak_mem_mb"] / ref["peak_mem_mb"] if ref["peak_mem_mb"] > 0 else float("nan")
            r["flops_ratio"] = r["gflops"] / ref["gflops"] if ref["gflops"] else float("nan")
        table.append([r["name"], f"{r['s_per_iter']:.3f}", f"{r.get('time_ratio', float('nan')):.2f}",
                      f"{r['peak_mem_mb']:.0f}", f"{r.get('mem_ratio', float('nan')):.2f}", f"{r['gflops']:.1f}",
                      f"{r.get('flops_ratio', float('nan')):.2f}", f"{r['params_m']:.1f}"])
    from tabulate import tabulate

    headers = ["variant", "fwd+bwd s/iter", "x time", "peak mem MB", "x mem", "GFLOPs (fwd)", "x FLOPs", "params M"]
    mem_kind = "max_memory_allocated" if args.device == "cuda" else "max RSS growth of the worker"
    print(f"{args.arch} at {args.size}x{args.size}, batch {args.batch}, {args.device}; ratios against '{REFERENCE}'; "
          f"memory = {mem_kind}")
    print(tabulate(table, headers=headers, tablefmt="github"))
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as f:
            csv.writer(f).writerows([headers] + table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"arch": args.arch, "size": args.size, "batch": args.batch, "device": args.device,
                       "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
