# MAE ViT-L/16: the ViT-B recipe with the larger encoder (same decoder, 800 epochs).
from .mae_vit_b_800ep import dataloader, lr_multiplier, model, optimizer, train

model.encoder.arch = "vit_l"
train.output_dir = "./output/pretrain/mae_vit_l_800ep"
