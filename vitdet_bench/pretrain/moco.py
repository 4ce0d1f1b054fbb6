"""MoCo v3 (Chen, Xie, He, 2021) for ViTs: a momentum encoder, a projector and a predictor.

Follows ``moco/builder.py`` and ``vits.py``: both encoders end in a 3-layer projector and the query
side adds a 2-layer predictor (Linear-BN-ReLU blocks, a last BN without affine); the loss is the
symmetric InfoNCE ``ctr(q1, k2) + ctr(q2, k1)``, each scaled by ``2 tau``, with the keys
all-gathered over processes so every rank's negatives are the global batch. The momentum goes
from ``momentum`` to 1 on a half cosine over training. The patch projection is random and frozen
(``freeze_patch_embed=True`` in the encoder), MoCo v3's stability trick.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import init_weights_vit_moco

from ..utils import comm
from .common import PretrainModel, stack_images
from .encoder import PretrainEncoder

__all__ = ["MoCoV3", "build_mlp", "contrastive_loss", "momentum_at", "concat_all_gather"]


def build_mlp(num_layers: int, input_dim: int, mlp_dim: int, output_dim: int, last_bn: bool = True,
              sync_bn: bool = False) -> nn.Sequential:
    """MoCo v3's MLP: (Linear without bias, BN, ReLU) x (n - 1), then Linear and a BN without affine."""
    bn = nn.SyncBatchNorm if sync_bn else nn.BatchNorm1d
    layers: list[nn.Module] = []
    for i in range(num_layers):
        dim1 = input_dim if i == 0 else mlp_dim
        dim2 = output_dim if i == num_layers - 1 else mlp_dim
        layers.append(nn.Linear(dim1, dim2, bias=False))
        if i < num_layers - 1:
            layers += [bn(dim2), nn.ReLU(inplace=True)]
        elif last_bn:
            # SimCLR-style: the last BN has no affine parameters.
            layers.append(bn(dim2, affine=False))
    return nn.Sequential(*layers)


@torch.no_grad()
def concat_all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """All-gather along the batch dimension without gradient (a no-op on one process)."""
    if comm.get_world_size() == 1:
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(comm.get_world_size())]
    torch.distributed.all_gather(gathered, tensor.contiguous())
    return torch.cat(gathered, dim=0)


def contrastive_loss(q: torch.Tensor, k: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of queries against all processes' keys; the positive of query i is local key i.

    Scaled by ``2 * temperature`` as MoCo v3 does (so the gradient scale does not depend on tau).
    """
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    k = concat_all_gather(k)
    logits = q @ k.t() / temperature
    n = q.shape[0]
    labels = torch.arange(n, device=q.device) + n * comm.get_rank()
    return F.cross_entropy(logits, labels) * (2 * temperature)


def momentum_at(progress: float, base_momentum: float, cosine: bool = True) -> float:
    """``m_t = 1 - (1 + cos(pi t / T)) / 2 * (1 - m_0)`` (``--moco-m-cos``), or ``m_0`` throughout."""
    if not cosine:
        return base_momentum
    return 1.0 - 0.5 * (1.0 + math.cos(math.pi * progress)) * (1.0 - base_momentum)


class MoCoV3(PretrainModel):
    """MoCo v3 around a :class:`PretrainEncoder` (cls token, sin-cos positions, frozen patch embed).

    Args:
        encoder: the base (query) encoder; the momentum encoder is a copy of it.
        dim: projector output width (256).
        mlp_dim: hidden width of projector and predictor (4096).
        temperature: softmax temperature (0.2 for ViT).
        momentum: initial momentum of the key encoder (0.99).
        cosine_momentum: raise the momentum to 1 on a half cosine over training.
        sync_bn: SyncBatchNorm in the MLPs (MoCo v3 converts to it under DDP).
    """

    method = "mocov3"
    label = "MoCo v3"
    batch_keys = ("image", "image2", "label")  # two views of each image

    def __init__(
        self,
        encoder: PretrainEncoder,
        dim: int = 256,
        mlp_dim: int = 4096,
        temperature: float = 0.2,
        momentum: float = 0.99,
        cosine_momentum: bool = True,
        sync_bn: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(encoder, **kwargs)
        if encoder.cls_token is None:
            raise ValueError("MoCo v3 projects the cls token: build the encoder with cls_token=True")
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.temperature = temperature
        self.base_momentum = momentum
        self.cosine_momentum = cosine_momentum
        for name, m in encoder.named_modules():
            init_weights_vit_moco(m, name)
        # MoCo v3's patch projection: xavier-uniform over the flattened kernel.
        w = encoder.vit.patch_embed.proj.weight
        bound = math.sqrt(6.0 / float(3 * w.shape[-1] * w.shape[-2] + w.shape[0]))
        nn.init.uniform_(w, -bound, bound)
        nn.init.zeros_(encoder.vit.patch_embed.proj.bias)
        nn.init.normal_(encoder.cls_token, std=1e-6)
        width = encoder.embed_dim
        # The projector replaces the ViT's head on both sides; the predictor is query-side only.
        self.projector = build_mlp(3, width, mlp_dim, dim, sync_bn=sync_bn)
        self.predictor = build_mlp(2, dim, mlp_dim, dim, sync_bn=sync_bn)
        self.momentum_encoder = copy.deepcopy(encoder)
        self.momentum_projector = copy.deepcopy(self.projector)
        for p in list(self.momentum_encoder.parameters()) + list(self.momentum_projector.parameters()):
            p.requires_grad_(False)
        self.momentum = momentum

    def set_progress(self, iteration: int, max_iter: int) -> None:
        super().set_progress(iteration, max_iter)
        self.momentum = momentum_at(self.progress, self.base_momentum, self.cosine_momentum)

    @torch.no_grad()
    def update_momentum_encoder(self, m: float) -> None:
        """``theta_k <- m theta_k + (1 - m) theta_q`` over parameters (BN statistics stay the key side's own)."""
        base = list(self.encoder.parameters()) + list(self.projector.parameters())
        momentum = list(self.momentum_encoder.parameters()) + list(self.momentum_projector.parameters())
        for p_base, p_mom in zip(base, momentum):
            p_mom.mul_(m).add_(p_base.detach(), alpha=1 - m)

    def query(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.projector(self.encoder(x)[:, 0]))

    def key(self, x: torch.Tensor) -> torch.Tensor:
        return self.momentum_projector(self.momentum_encoder(x)[:, 0])

    def loss(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """The symmetric loss for two normalised views; updates the momentum encoder first (training)."""
        q1, q2 = self.query(x1), self.query(x2)
        with torch.no_grad():
            if self.training:
                self.update_momentum_encoder(self.momentum)
            k1, k2 = self.key(x1), self.key(x2)
        return contrastive_loss(q1, k2, self.temperature) + contrastive_loss(q2, k1, self.temperature)

    def forward(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        x1 = self.normalize(stack_images(batch, "image", self.device))
        x2 = self.normalize(stack_images(batch, "image2", self.device))
        return {"loss_moco": self.loss(x1, x2)}

    def export_meta(self) -> dict:
        return {**super().export_meta(), "temperature": self.temperature, "momentum": self.base_momentum}
