# The seed methods at COCO scale: the benchmarking paper's Table 1 (configs/benchmark/coco_vit_b.py)
# plus each seed method with its own paper's detection recipe. Same use as coco_vit_b.py:
#   python tools/benchmark.py --config-file configs/benchmark/coco_seeds.py --print-commands --num-gpus 8
#   python tools/benchmark.py --config-file configs/benchmark/coco_seeds.py --collect-only
from .coco_vit_b import benchmark

benchmark["name"] = "coco_seeds"
benchmark["output_dir"] = "./output/benchmark/coco_seeds"

# ConvMAE / FastConvMAE (issue 15): ConvViT-B Mask R-CNN, ConvMAE's 25-epoch recipe. ConvMAE from the
# released convmae_base.pth; FastConvMAE released no weights, so it is pre-trained first (50 epochs
# on ImageNet-1k under $VITDET_BENCH_DATASETS/imagenet).
benchmark["inits"]["convmae"] = dict(config="configs/COCO/mask_rcnn_convvit_b_convmae_25ep.py",
                                     checkpoint="checkpoints/convmae_base.pth")
benchmark["inits"]["fastconvmae"] = dict(
    config="configs/COCO/mask_rcnn_convvit_b_fastconvmae_25ep.py",
    pretrain=[dict(name="fastconvmae", config="projects/FastConvMAE/configs/fastconvmae_convvit_b_50ep.py")],
)
