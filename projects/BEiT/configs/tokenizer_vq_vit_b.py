# The project's own BEiT tokenizer: a VQ-VAE with one code per 16 x 16 patch and 8192 codes,
# trained on the pre-training images (no download). Not DALL-E's dVAE; it stands where BEiT's
# "customized" dVAE route stands (a tokenizer trained on your data).
#   python tools/train_tokenizer.py --config-file projects/BEiT/configs/tokenizer_vq_vit_b.py
# writes tokenizer_final.pth, which beit_vit_b_800ep.py takes with tokenizer.kind=vq tokenizer.path=...
from vitdet_bench.config import LazyCall as L
from vitdet_bench.pretrain import VQTokenizer, tokenizer_transform

from ...common.pretrain_base import dataloader, epochs_to_iters, lr_multiplier, optimizer, train

_image_size = 224
_batch = 512

model = L(VQTokenizer)(patch_size=16, vocab_size=8192, code_dim=32, hidden_dim=128, commitment=0.25)
dataloader.train.mapper.transform = L(tokenizer_transform)(image_size=_image_size)
dataloader.train.dataset.labels = False
dataloader.train.total_batch_size = _batch
optimizer.lr = 1e-3
optimizer.betas = (0.9, 0.99)
optimizer.weight_decay = 0.0
train.max_iter = epochs_to_iters(20, _batch)
lr_multiplier.warmup_iters = 500
train.output_dir = "./output/pretrain/tokenizer_vq_vit_b"
