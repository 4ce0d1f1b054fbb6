# The benchmarking paper's Table 1 (ViT-B, Mask R-CNN, COCO) as a benchmark file: each
# initialization's recipe from configs/COCO, its backbone from the released checkpoint (or run
# the projects/ pre-training configs first by replacing `checkpoint` with `pretrain`). Needs COCO
# under $VITDET_BENCH_DATASETS and the checkpoints under ./checkpoints. On a cluster:
#   python tools/benchmark.py --config-file configs/benchmark/coco_vit_b.py --print-commands --num-gpus 8
#   (submit the printed jobs), then
#   python tools/benchmark.py --config-file configs/benchmark/coco_vit_b.py --collect-only
benchmark = dict(
    name="coco_vit_b",
    output_dir="./output/benchmark/coco_vit_b",
    detection_overrides=[],
    tide=True,
    cost=False,  # measure on the GPU machine: tools/benchmark.py ... --measure-cost
    inits=dict(
        random=dict(config="configs/COCO/mask_rcnn_vit_b_random_400ep.py"),
        supervised=dict(config="configs/COCO/mask_rcnn_vit_b_supervised_100ep.py",
                        checkpoint="checkpoints/deit_base_patch16_224-b5f2ef4d.pth"),
        mocov3=dict(config="configs/COCO/mask_rcnn_vit_b_mocov3_100ep.py", checkpoint="checkpoints/vit-b-300ep.pth.tar"),
        beit=dict(config="configs/COCO/mask_rcnn_vit_b_beit_100ep.py",
                  checkpoint="checkpoints/beit_base_patch16_224_pt1k_800ep.pth"),
        mae=dict(config="configs/COCO/mask_rcnn_vit_b_mae_100ep.py", checkpoint="checkpoints/mae_pretrain_vit_base.pth"),
    ),
)
