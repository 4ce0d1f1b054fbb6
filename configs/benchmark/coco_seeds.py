# The seed methods at COCO scale: the benchmarking paper's Table 1 (configs/benchmark/coco_vit_b.py)
# plus each seed method with its own paper's detection recipe. Same use as coco_vit_b.py:
#   python tools/benchmark.py --config-file configs/benchmark/coco_seeds.py --print-commands --num-gpus 8
#   python tools/benchmark.py --config-file configs/benchmark/coco_seeds.py --collect-only
from .coco_vit_b import benchmark

benchmark["name"] = "coco_seeds"
benchmark["output_dir"] = "./output/benchmark/coco_seeds"

# EVA-style feature reconstruction and MAE-Lite (issue 14), both pre-trained here first (ImageNet-1k
# under $VITDET_BENCH_DATASETS/imagenet). EVA: a ViT-B/16 student of a CLIP ViT-L/14 teacher (an
# open_clip state dict at checkpoints/open_clip_vit_l14_openai.bin), fine-tuned with the MIM rows'
# Table 1 recipe. MAE-Lite: ViT-Tiny (12 heads) distilled from MAE's released ViT-B
# (checkpoints/mae_pretrain_vit_base.pth), with MAE-Lite's ViTDet recipe at 640; its own comparison
# (with and without distillation) is configs/benchmark/coco_vit_t.py.
benchmark["inits"]["eva"] = dict(
    config="configs/COCO/mask_rcnn_vit_b_eva_100ep.py",
    pretrain=[dict(name="eva", config="projects/EVA/configs/eva_vit_b_clip_l14_800ep.py")],
)
benchmark["inits"]["maelite"] = dict(
    config="configs/COCO/mask_rcnn_vitdet_t_100ep.py",
    pretrain=[dict(name="maelite", config="projects/MAELite/configs/maelite_distill_vit_tiny_400ep.py")],
)
# ConvMAE / FastConvMAE (issue 15): ConvViT-B Mask R-CNN, ConvMAE's 25-epoch recipe. ConvMAE from the
# released convmae_base.pth; FastConvMAE released no weights, so it is pre-trained first (50 epochs
# on ImageNet-1k under $VITDET_BENCH_DATASETS/imagenet).
benchmark["inits"]["convmae"] = dict(config="configs/COCO/mask_rcnn_convvit_b_convmae_25ep.py",
                                     checkpoint="checkpoints/convmae_base.pth")
benchmark["inits"]["fastconvmae"] = dict(
    config="configs/COCO/mask_rcnn_convvit_b_fastconvmae_25ep.py",
    pretrain=[dict(name="fastconvmae", config="projects/FastConvMAE/configs/fastconvmae_convvit_b_50ep.py")],
)
