# The paper's Table 1 benchmark (configs/benchmark/coco_vit_b.py: ViT-B Mask R-CNN on COCO, five
# initializations) plus the seed methods at full scale, pre-trained here first:
#   python tools/benchmark.py --config-file configs/benchmark/coco_vit_b_seeds.py --print-commands --num-gpus 8
# EVA-style feature reconstruction needs a CLIP ViT-L/14 image tower as an open_clip state dict at
# checkpoints/open_clip_vit_l14_openai.bin (the pre-training config's teacher.path) and ImageNet.
from .coco_vit_b import benchmark

benchmark["name"] = "coco_vit_b_seeds"
benchmark["output_dir"] = "./output/benchmark/coco_vit_b_seeds"
benchmark["inits"]["eva"] = dict(
    config="configs/COCO/mask_rcnn_vit_b_eva_100ep.py",
    pretrain=[dict(name="eva", config="projects/EVA/configs/eva_vit_b_clip_l14_800ep.py")],
)
