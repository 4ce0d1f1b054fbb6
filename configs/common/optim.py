# AdamW with no weight decay on norms, biases, pos_embed and relative-position tables.
# layer_decay_rate (ViTDet: 0.7 / 0.8 / 0.9 for B / L / H) is off by default, as in the BENCH paper.
import torch

from vitdet_bench.config import LazyCall as L
from vitdet_bench.solver import get_optimizer_params

AdamW = L(torch.optim.AdamW)(
    params=L(get_optimizer_params)(
        # model is set by the training script.
        weight_decay_norm=0.0,
        weight_decay_bias=0.0,
        weight_decay_embed=0.0,
        layer_decay_rate=None,
    ),
    lr=8e-5,
    betas=(0.9, 0.999),
    weight_decay=0.1,
)
