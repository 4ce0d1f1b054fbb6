# The train section, with Detectron2's keys (configs/common/train.py).
train = dict(
    output_dir="./output",
    # A detector checkpoint (this project's model_final.pth, or Detectron2's: a model-zoo .pkl or a
    # .pth in its names), or a pre-trained backbone file (MAE, MoCo v3, BEiT, DeiT, timm, our
    # exports). format: "auto" (from the file's names), "detector", "detectron2", or a backbone
    # format; resize_patch_embed / rel_pos_resize: how a backbone file is fitted to the ViT.
    init_checkpoint="",
    init_checkpoint_options=dict(format="auto", resize_patch_embed=False, rel_pos_resize="cubic"),
    # Stop when the init checkpoint lacks a tensor it should have (another width, no neck, other
    # number of classes); False logs the same report and keeps those tensors at their initial values.
    init_strict=True,
    max_iter=90000,
    # dtype: float16 (CUDA, with GradScaler) or bfloat16. inference: autocast evaluation and the
    # Predictor in that dtype: None = when training uses AMP on CUDA (CPU runs stay fp32), True /
    # False = always / never (vitdet_bench/engine/speed.py).
    amp=dict(enabled=False, dtype="float16", inference=None),
    # torch.compile of model.<module> in place (same parameter names and checkpoints); mode /
    # backend / dynamic are torch.compile's. Compiles on the first forward pass.
    compile=dict(enabled=False, module="backbone", mode=None, backend=None, dynamic=None),
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    checkpointer=dict(period=5000, max_to_keep=100),
    eval_period=5000,  # 0: evaluate only at the end; -1: never
    # A dataset whose images are some of dataloader.test's (e.g. demo_val100): the evaluations before
    # the last score only it (a cheaper convergence curve, metrics.json keys curve/bbox/AP ...); the
    # final one scores dataloader.test and, from the same detections, the subset too. None: every
    # evaluation scores dataloader.test.
    eval_subset=None,
    log_period=20,
    clip_grad=dict(enabled=False, max_norm=1.0),
    # Effective batch = dataloader.train.total_batch_size x grad_accum_steps. With fewer GPUs keep the
    # paper's 64 by accumulating (e.g. 8 GPUs x 2 images x 4 steps), or scale optimizer.lr linearly
    # with the batch and train.max_iter inversely (README, "Fewer GPUs").
    grad_accum_steps=1,
    # The batch optimizer.lr is stated for: when set and the effective batch differs, lr is scaled
    # linearly by effective batch / this (Detectron2's REFERENCE_WORLD_SIZE rule, for the lr only).
    reference_batch_size=None,
    device="auto",  # "auto" (CUDA when available), "cuda" or "cpu"
    seed=0,
)
