# The main job at demo scale (`make demo`, `python tools/benchmark.py`): pre-train a tiny ViT
# (width 96, 4 blocks) with supervised, MoCo v3, BEiT (project-trained VQ tokenizer) and MAE on the
# bundled demo images, fine-tune five Mask R-CNNs (the four plus random) with the benchmarking
# paper's recipe at demo scale (configs/demo/bench/*.py), evaluate, run TIDE, and write the table,
# plots and report. Scale it up by pointing `inits` at real configs and checkpoints
# (configs/benchmark/coco_vit_b.py).
# Sized for the 15-minute budget on 2 CPU cores: 200 iterations at batch 2 (about 0.45 s each),
# evaluated at 100 and 200.
det_iters = 200

benchmark = dict(
    name="demo",
    output_dir="./output/benchmark/demo",
    detection_overrides=[f"train.max_iter={det_iters}", f"train.eval_period={det_iters // 2}",
                         "dataloader.train.total_batch_size=2", "train.checkpointer.period=100",
                         "lr_multiplier.warmup_iters=20"],
    pretrain_overrides=[],
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
