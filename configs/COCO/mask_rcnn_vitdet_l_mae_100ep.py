# ViTDet, Mask R-CNN ViT-L from MAE: 55.6 AP box / 49.2 AP mask (Table 5). As the ViT-B file with
# 24 blocks of width 1024, global blocks 5, 11, 17, 23, drop path 0.4, layer decay 0.8.
from vitdet_bench.modeling.backbone import vit_preset

from .mask_rcnn_vitdet_b_mae_100ep import dataloader, epochs_to_iters, lr_multiplier, model, optimizer, train

_l = vit_preset("vit_l")
_vit = model.backbone.net
_vit.embed_dim = _l["embed_dim"]
_vit.depth = _l["depth"]
_vit.num_heads = _l["num_heads"]
_vit.window_block_indexes = _l["window_block_indexes"]
_vit.drop_path_rate = 0.4
optimizer.params.layer_decay_rate = 0.8
train.init_checkpoint = "checkpoints/mae_pretrain_vit_large.pth"
train.output_dir = "./output/COCO/mask_rcnn_vitdet_l_mae_100ep"
