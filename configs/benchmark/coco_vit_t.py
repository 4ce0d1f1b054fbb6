# MAE-Lite's detection comparison (Wang et al., ICML 2023, Mask R-CNN on COCO with ViTDet's recipe at
# 640, configs/COCO/mask_rcnn_vitdet_t_100ep.py): ViT-Tiny (12 heads) pre-trained with MAE-Lite's
# recipe, without and with attention distillation from MAE ViT-B (reported: 39.9 / 35.4 and
# 42.3 / 37.4 box / mask AP). Both are pre-trained here first (ImageNet under
# $VITDET_BENCH_DATASETS; the teacher is MAE's released checkpoints/mae_pretrain_vit_base.pth):
#   python tools/benchmark.py --config-file configs/benchmark/coco_vit_t.py --print-commands --num-gpus 8
benchmark = dict(
    name="coco_vit_t",
    output_dir="./output/benchmark/coco_vit_t",
    detection_overrides=[],
    tide=True,
    cost=False,  # measure on the GPU machine: tools/benchmark.py ... --measure-cost
    inits=dict(
        maelite=dict(config="configs/COCO/mask_rcnn_vitdet_t_100ep.py",
                     pretrain=[dict(name="maelite", config="projects/MAELite/configs/maelite_vit_tiny_400ep.py")]),
        maelite_distill=dict(config="configs/COCO/mask_rcnn_vitdet_t_100ep.py",
                             pretrain=[dict(name="maelite_distill",
                                            config="projects/MAELite/configs/maelite_distill_vit_tiny_400ep.py")]),
    ),
)
