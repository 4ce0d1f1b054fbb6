# MAE-Lite with attention distillation ("D-MAE-Tiny"; mae_lite_distill_exp.py): the MAE-Lite
# ViT-Tiny recipe plus a frozen MAE ViT-B/16 teacher (MAE's released 1600-epoch encoder,
# mae_pretrain_vit_base.pth; nothing here downloads it) that runs on the student's own visible
# tokens (same shuffle). The last block's pre-softmax attention logits are matched with MSE x 1.0
# through a 1x1 convolution over heads (12 -> 12 here: on by default), added to the pixel loss.
# MAE-Lite's COCO result with it: 42.3 box / 37.4 mask AP (Mask R-CNN, ViTDet recipe at 640).
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import build_teacher

from .maelite_vit_tiny_400ep import dataloader, lr_multiplier, model, optimizer, train

teacher = L(build_teacher)(
    path="checkpoints/mae_pretrain_vit_base.pth",
    name="MAE ViT-B/16 (1600 ep, released)",
    image_size="${model.encoder.img_size}",  # the teacher runs at the student's grid
    patch_size=16,
    embed_dim=768,  # checked against the file
    depth=12,
    num_heads=12,
)
model.teacher = "${teacher}"
model.distill_weight = 1.0
model.student_block = -1  # MAE-Lite's distill_attn_idx=(12,): the last block of both
model.teacher_block = -1
model.attn_adapter = True
train.output_dir = "./output/pretrain/maelite_distill_vit_tiny_400ep"
