# The demo benchmark (configs/benchmark/demo.py: its five initializations, schedules and data) plus
# the seed methods, each pre-trained here at demo scale from an earlier step's export:
#   python tools/benchmark.py --config-file configs/benchmark/demo_seeds.py [--only ...]
# `make demo` stays the five (demo.py).
from .demo import benchmark

benchmark["name"] = "demo_seeds"
benchmark["output_dir"] = "./output/benchmark/demo_seeds"
inits = benchmark["inits"]
# Feature-reconstruction MIM (EVA's method with a non-CLIP teacher): MoCo v3 first, then its export
# is the frozen teacher.
inits["featrecon"] = dict(
    config="configs/demo/bench/featrecon.py",
    pretrain=[dict(name="teacher", config="projects/MoCoV3/configs/mocov3_vit_tiny_demo.py"),
              dict(name="featrecon", config="projects/EVA/configs/featrecon_vit_tiny_demo.py",
                   overrides=["teacher.path={teacher}/backbone_final.pth"])],
)
# MAE-Lite with attention distillation: MAE first, then its export is the frozen teacher.
inits["maelite"] = dict(
    config="configs/demo/bench/maelite.py",
    pretrain=[dict(name="teacher", config="projects/MAE/configs/mae_vit_tiny_demo.py"),
              dict(name="maelite", config="projects/MAELite/configs/maelite_vit_tiny_demo.py",
                   overrides=["teacher.path={teacher}/backbone_final.pth"])],
)
