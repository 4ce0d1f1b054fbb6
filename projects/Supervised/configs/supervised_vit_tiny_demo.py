# Supervised at demo scale: classify each image of the demo pre-training pool by its dominant shape
# (the generator's label; num_classes from the data) with DeiT's recipe, minus three parts that
# regularise 300-epoch schedules and, measured at demo scale, stop a 4-block ViT from learning in a
# few epochs: RandAugment, Mixup and CutMix; and at an lr of 3e-4 (DeiT's 5e-4 x batch / 512 would be
# 6e-5 at batch 64). Measured on the pool with 600 iterations (projects/common/demo.py's measurements):
# with RandAugment m5 and lr 1e-3 the encoder's linear probe (cls) stayed at 35.8% against the random
# encoder's 38.8%; without RandAugment at 3e-4 it reached 49.7%. Batch 64, on the CPU.
from ...common.demo import DEMO_VIT as _DEMO_VIT
from ...common.demo import demo_data, demo_iters
from .deit_vit_b_300ep import dataloader, lr_multiplier, model, optimizer, train

_image_size = _DEMO_VIT["img_size"]
model.encoder.update(_DEMO_VIT)
model.encoder.drop_path_rate = 0.0
model.num_classes = None  # from the demo dataset's categories
model.mixup_alpha = 0.0
model.cutmix_alpha = 0.0
dataloader.train.mapper.transform.image_size = _image_size
dataloader.train.mapper.transform.rand_augment = None
demo_data(dataloader, train, "supervised_vit_tiny_demo", labels=True)
optimizer.lr = 3e-4
train.max_iter = demo_iters("supervised")
lr_multiplier.warmup_iters = 20
