# The main job at demo scale on the CPU (`make demo` without CUDA, `python tools/benchmark.py
# --device cpu`): pre-train a tiny ViT (width 96, 4 blocks) with supervised, MoCo v3, BEiT (project-
# trained VQ tokenizer) and MAE on the demo generator's pre-training pool (20,000 images that are not
# detection images, projects/common/demo.py), fine-tune five Mask R-CNNs (the four plus random) with
# the benchmarking paper's recipe and per-initialization hyper-parameters at demo scale
# (configs/demo/bench/*.py) on the 2,000 demo training images, evaluate each five times on the 250
# validation images, and write the table with bootstrap intervals, the verdicts against random, the
# convergence comparison, TIDE, cost and a training profile.
# Measured on 2 CPU cores: 27.5 minutes from a fresh cache (README, "The main job": wall time per
# stage and the results). Fine-tuning is one epoch of the 2,000 training images at batch 4, in the
# detector config's bf16 autocast; its five evaluations of 250 images cost as much again.
# Pre-training schedules live in the projects/*/configs/*_demo.py files; fine-tuning's here.
_det_iters = 500
_det_batch = 4

benchmark = dict(
    name="demo",
    profile="CPU demo",
    device="cpu",
    output_dir="./output/benchmark/demo",
    detection_overrides=[f"train.max_iter={_det_iters}", f"train.eval_period={_det_iters // 5}",
                         f"dataloader.train.total_batch_size={_det_batch}", f"train.checkpointer.period={_det_iters // 5}",
                         "train.checkpointer.max_to_keep=1", f"lr_multiplier.warmup_iters={_det_iters // 20}"],
    pretrain_overrides=[],
    seeds=1,
    bootstrap=dict(resamples=500, level=0.95, seed=0),
    profile_steps=5,
    tide=True,
    cost=True,
    inits=dict(
        random=dict(config="configs/demo/bench/random.py"),
        supervised=dict(
            config="configs/demo/bench/supervised.py",
            pretrain=[dict(name="supervised", config="projects/Supervised/configs/supervised_vit_tiny_demo.py")],
        ),
        mocov3=dict(
            config="configs/demo/bench/mocov3.py",
            pretrain=[dict(name="mocov3", config="projects/MoCoV3/configs/mocov3_vit_tiny_demo.py")],
        ),
        beit=dict(
            config="configs/demo/bench/beit.py",
            pretrain=[
                dict(name="tokenizer", tool="tokenizer", config="projects/BEiT/configs/tokenizer_vq_demo.py"),
                dict(name="beit", config="projects/BEiT/configs/beit_vit_tiny_demo.py",
                     overrides=["tokenizer.path={tokenizer}/tokenizer_final.pth"]),
            ],
        ),
        mae=dict(
            config="configs/demo/bench/mae.py",
            pretrain=[dict(name="mae", config="projects/MAE/configs/mae_vit_tiny_demo.py")],
        ),
    ),
)
