# lr schedules relative to train.max_iter, so an override of max_iter keeps them consistent.
from vitdet_bench.config import LazyCall as L
from vitdet_bench.solver import WarmupParamScheduler, cosine_schedule, step_schedule

# The BENCH paper: half-period cosine after a linear warm-up of 0.25 epoch (~461 its at batch 64).
cosine_lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(cosine_schedule)(end_value=0.0),
    warmup_iters=461,
    max_iter="${train.max_iter}",
    warmup_factor=0.001,
)

# ViTDet / the released BENCH configs: x0.1 at 88.9% and 96.3% of training, 250 warm-up its.
step_lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(step_schedule)(max_iter="${train.max_iter}", milestones=[0.889, 0.963], values=[1.0, 0.1, 0.01]),
    warmup_iters=250,
    max_iter="${train.max_iter}",
    warmup_factor=0.001,
)
