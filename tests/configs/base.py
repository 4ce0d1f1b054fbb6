from torch import nn

from vitdet_bench.config import LazyCall as L

layer = L(nn.Linear)(in_features=4, out_features="${..dims.width}")
dims = dict(width=8)  # top-level plain values (ints) are not config keys, as in Detectron2
train = dict(max_iter=100, lr=0.1, amp=dict(enabled=False), output_dir="/tmp/x")
optimizer = dict(lr="${train.lr}", betas=[0.9, 0.999])
