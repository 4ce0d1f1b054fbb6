# The demo benchmark (configs/benchmark/demo.py: its data, schedules and five initializations)
# plus the seed methods' initializations: `python tools/benchmark.py --config-file
# configs/benchmark/demo_seeds.py`. Inits are grouped by the issue that added them.
from .demo import benchmark

benchmark["name"] = "demo_seeds"
benchmark["output_dir"] = "./output/benchmark/demo_seeds"

# Feature-reconstruction MIM and MAE-Lite (issue 14) on the demo ViT, each with a frozen teacher
# that an earlier step of its chain pre-trains ({teacher} is that step's output directory).
# featrecon: EVA's method with the demo MoCo v3 export as teacher (not CLIP, so not "EVA").
benchmark["inits"]["featrecon"] = dict(
    config="configs/demo/bench/featrecon.py",
    pretrain=[dict(name="teacher", config="projects/MoCoV3/configs/mocov3_vit_tiny_demo.py"),
              dict(name="featrecon", config="projects/EVA/configs/featrecon_vit_tiny_demo.py",
                   overrides=["teacher.path={teacher}/backbone_final.pth"])],
)
# maelite: MAE-Lite's recipe (6 heads at width 96) distilling the demo MAE export's attention.
benchmark["inits"]["maelite"] = dict(
    config="configs/demo/bench/maelite.py",
    pretrain=[dict(name="teacher", config="projects/MAE/configs/mae_vit_tiny_demo.py"),
              dict(name="maelite", config="projects/MAELite/configs/maelite_vit_tiny_demo.py",
                   overrides=["teacher.path={teacher}/backbone_final.pth"])],
)
# ConvMAE / FastConvMAE (issue 15) on the tiny ConvViT of configs/demo/bench_convvit_tiny.py.
# They change the architecture as well as the pre-training, so the ConvViT's own random init is
# listed too: compare convmae / fastconvmae with random_convvit for the pre-training's effect, and
# with the ViT rows for the method as a whole.
benchmark["inits"]["random_convvit"] = dict(config="configs/demo/bench/convvit_random.py")
benchmark["inits"]["convmae"] = dict(
    config="configs/demo/bench/convvit_convmae.py",
    pretrain=[dict(name="convmae", config="projects/ConvMAE/configs/convmae_convvit_tiny_demo.py")],
)
benchmark["inits"]["fastconvmae"] = dict(
    config="configs/demo/bench/convvit_fastconvmae.py",
    pretrain=[dict(name="fastconvmae", config="projects/FastConvMAE/configs/fastconvmae_convvit_tiny_demo.py")],
)
