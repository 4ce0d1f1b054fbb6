# Supervised at demo scale: classify each image of the demo pre-training pool by the category of its
# largest visible object (the generator's label; num_classes from the data), DeiT's recipe with a
# milder RandAugment and without Mixup / CutMix: they regularise 300-epoch schedules, and the demo sees
# the pool about once. Batch 64, on the CPU.
from ...common.demo import DEMO_VIT as _DEMO_VIT, demo_data
from .deit_vit_b_300ep import dataloader, lr_multiplier, model, optimizer, train

_image_size = _DEMO_VIT["img_size"]
model.encoder.update(_DEMO_VIT)
model.encoder.drop_path_rate = 0.0
model.num_classes = None  # from the demo dataset's categories
model.mixup_alpha = 0.0
model.cutmix_alpha = 0.0
dataloader.train.mapper.transform.image_size = _image_size
dataloader.train.mapper.transform.rand_augment = "rand-m5-mstd0.5-inc1"
demo_data(dataloader, train, "supervised_vit_tiny_demo", labels=True)
optimizer.lr = 1e-3
train.max_iter = 150
lr_multiplier.warmup_iters = 20
