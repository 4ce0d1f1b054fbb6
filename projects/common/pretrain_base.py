# What every pre-training config shares: the engine's train section (same keys as detection),
# AdamW with parameter groups, linear warm-up + half-period cosine per iteration, and the
# resumable training loader. Method files set the model, the views and the numbers, and state
# their parameter groups (optimizer.params) as their official code forms them.
import torch
from omegaconf import OmegaConf

from vitdet_bench.config import LazyCall as L
from vitdet_bench.data.constants import IMAGENET_TRAIN_IMAGES
from vitdet_bench.pretrain import PretrainMapper, build_pretrain_train_loader, image_folder_dataset
from vitdet_bench.solver import WarmupParamScheduler, cosine_schedule, get_optimizer_params
from vitdet_bench.solver import epochs_to_iters as _epochs_to_iters

from ...configs.common.train import train


def epochs_to_iters(epochs: float, total_batch_size: int) -> int:
    """Iterations for ``epochs`` of ImageNet-1k at ``total_batch_size`` (the recipes' unit)."""
    return _epochs_to_iters(epochs, total_batch_size, IMAGENET_TRAIN_IMAGES)


def scaled_lr(base_lr: float, total_batch_size: int) -> float:
    """The linear scaling rule of MAE / MoCo v3 / BEiT: lr = base_lr x batch / 256."""
    return base_lr * total_batch_size / 256


dataloader = OmegaConf.create()
dataloader.train = L(build_pretrain_train_loader)(
    # ImageNet-style folders: $VITDET_BENCH_DATASETS/imagenet/train/<class>/*.JPEG
    dataset=L(image_folder_dataset)(root="${oc.env:VITDET_BENCH_DATASETS,datasets}/imagenet/train", labels=True),
    mapper=L(PretrainMapper)(transform=None),
    total_batch_size=4096,
    num_workers=10,
    seed="${train.seed}",
    on_bad_image="skip",
)

optimizer = L(torch.optim.AdamW)(
    params=L(get_optimizer_params)(weight_decay_norm=0.0, weight_decay_bias=0.0, weight_decay_embed=0.0),
    lr=1.5e-4,
    betas=(0.9, 0.95),
    weight_decay=0.05,
)

lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(cosine_schedule)(end_value=0.0),
    warmup_iters=0,
    max_iter="${train.max_iter}",
    warmup_factor=0.0,
    rescale_interval=False,  # True: the cosine runs over the iterations after the warm-up
)

train.eval_period = -1  # nothing to evaluate: the product is the exported backbone
train.log_period = 20
train.amp.enabled = True
train.amp.dtype = "bfloat16"  # fp16 NaNs are the common failure of long MIM runs (pretraining.md 9.5)
train.checkpointer.period = 5000
train.checkpointer.max_to_keep = 3
