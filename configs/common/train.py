# The train section, with Detectron2's keys (configs/common/train.py).
train = dict(
    output_dir="./output",
    init_checkpoint="",
    max_iter=90000,
    amp=dict(enabled=False, dtype="float16"),  # float16 (CUDA, with GradScaler) or bfloat16
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    checkpointer=dict(period=5000, max_to_keep=100),
    eval_period=5000,  # 0: evaluate only at the end; -1: never
    log_period=20,
    clip_grad=dict(enabled=False, max_norm=1.0),
    device="auto",  # "auto" (CUDA when available), "cuda" or "cpu"
    seed=0,
)
