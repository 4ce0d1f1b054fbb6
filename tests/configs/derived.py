from .base import dims, layer, optimizer, train  # noqa: F401
from . import base

train.max_iter = 200
extra = dict(from_module=base.dims.width)
