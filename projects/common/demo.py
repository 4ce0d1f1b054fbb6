# The demo scale shared by every method's *_demo.py: the ViT of configs/demo/bench_vit_tiny.py
# (width 96, 4 blocks, 3 heads, patch 16) pre-trained at 128 px (an 8 x 8 grid, the detector's
# window) on the demo generator's pre-training pool: object-centric images of the detection data's
# shapes and backgrounds (one dominant labelled shape each, as ImageNet is to COCO), never the
# detection images themselves, drawn into the cache on first use at the pre-training resolution.
# Supervised pre-training reads the same images with their labels. Every method reads the pool as
# rows of a memory-mapped array (no decoding). On the CPU the views are made per image with PIL
# and the ViT methods train in fp32: measured with two runs at once, one thread each (how the CPU
# demo runs, configs/benchmark/demo.py), batched views (PretrainMapper(batched=True)) were no faster
# (MAE 0.200 vs 0.170 s / step, MoCo v3 0.80 vs 0.72) and bfloat16 autocast slower for these 96-wide
# ViTs (MAE 0.210 vs 0.153 s / step with 2 threads); only the convolutional VQ tokenizer gains from it
# (0.20 vs 0.35 s / step), so it and BEiT, which runs it, use it. The GPU profile renders each
# batch's views on the GPU in bfloat16 (configs/benchmark/demo_gpu.py).
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import demo_pool_dataset

DEMO_VIT = dict(arch="vit_t", img_size=128, embed_dim=96, depth=4, num_heads=3)
# ConvMAE / FastConvMAE at demo scale: a ConvViT whose stage 3 is the demo ViT's width and head count.
DEMO_CONVVIT = dict(embed_dims=(32, 48, 96), depths=(2, 2, 3), num_heads=3)
# 12,000 images: six times the detection training set, as many as lets MoCo v3 (the slowest step) see
# the pool once and MAE three times within the demo's pre-training time (below).
POOL_SIZE = 12000

# The demo's pre-training schedule, one rule for every method: each of the four initializations gets
# the same share of process time on the reference machine (2 CPU cores, torch 2.14, the demo configs
# as they are, two runs at once with one thread each); its iterations are that share over its
# measured step time (median whole step, data included: tools/benchmark_pretrain.py --pipeline,
# 2026-12-06). BEiT's share includes its tokenizer's quarter. A faster method sees more images in the
# same time (MAE's encoder sees a quarter of the tokens), a slower one fewer (MoCo v3 encodes two
# views twice): equal time, not equal images, because time is what a researcher spends; the report
# states each method's images and epochs seen.
PRETRAIN_SHARE_S = 150.0
STEP_S = {"supervised": 0.215, "mocov3": 0.72, "tokenizer": 0.32, "beit": 0.37, "mae": 0.17}
_SHARES = {"supervised": 1.0, "mocov3": 1.0, "tokenizer": 0.25, "beit": 0.75, "mae": 1.0}


def demo_iters(method: str) -> int:
    """Iterations of ``method``'s demo pre-training under the equal-wall rule above."""
    return max(1, int(round(PRETRAIN_SHARE_S * _SHARES[method] / STEP_S[method])))


def demo_data(dataloader, train, name, labels=False, bf16=False):
    """Point a pre-training config at the demo pool, at CPU scale (``bf16``: autocast, for the
    convolutional tokenizer and the BEiT step that runs it)."""
    dataloader.train.dataset = L(demo_pool_dataset)(size=POOL_SIZE, seed=0, labels=labels,
                                                    image_size=DEMO_VIT["img_size"])
    dataloader.train.mapper.batched = False
    dataloader.train.total_batch_size = 64
    dataloader.train.num_workers = 0
    dataloader.train.on_bad_image = "error"
    train.device = "cpu"
    train.amp.enabled = bf16
    train.amp.dtype = "bfloat16"
    train.output_dir = f"./output/pretrain/{name}"
    train.checkpointer.period = 0
    train.checkpointer.max_to_keep = 1
    train.log_period = 20


def demo_convmae(model, dataloader, optimizer, lr_multiplier, train, name):
    """ConvMAE / FastConvMAE at demo scale: the tiny ConvViT and a 64-wide, 1-block decoder at the
    demo resolution, on the demo pool, 200 steps at lr 1.5e-3 (the same for both, so they compare
    at equal iterations)."""
    model.encoder.update(DEMO_CONVVIT, img_size=DEMO_VIT["img_size"])
    model.decoder_dim = 64
    model.decoder_depth = 1
    model.decoder_num_heads = 4
    dataloader.train.mapper.transform.image_size = DEMO_VIT["img_size"]
    demo_data(dataloader, train, name)
    optimizer.lr = 1.5e-3
    train.max_iter = 200
    lr_multiplier.warmup_iters = 20
