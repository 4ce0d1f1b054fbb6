# EVA-style feature-reconstruction MIM, ViT-L/16 student, teacher = OpenAI CLIP ViT-L/14: the ViT-B
# recipe (eva_vit_b_clip_l14_800ep.py) with the larger student (24 blocks of width 1024, 16 heads).
from .eva_vit_b_clip_l14_800ep import dataloader, lr_multiplier, model, optimizer, teacher, train

model.encoder.arch = "vit_l"
train.output_dir = "./output/pretrain/eva_vit_l_clip_l14_800ep"
