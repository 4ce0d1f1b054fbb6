"""Visual tokenizers for BEiT: what turns an image into the discrete targets of masked patches.

Two are offered, named for what they are:

* :class:`VQTokenizer`, a small VQ-VAE (van den Oord et al., 2017) trained by the project on the
  pre-training images themselves (``tools/train_tokenizer.py``). It needs no download, and it is
  *not* DALL-E's dVAE: it plays the role BEiT's "customized" dVAE route plays in the BEiT repo, a
  tokenizer trained on your data. Its encoder downsamples by the ViT's patch size, so it gives one
  token per patch at the model's input resolution.
* :class:`DalleTokenizer`, the dVAE encoder of DALL-E that BEiT used, when the user has its
  ``encoder.pkl`` (from OpenAI; not downloadable here) and the ``DALL-E`` package installed.

Both expose ``get_codebook_indices(images_0_255) -> (B, H/p, W/p)`` and ``vocab_size``; BEiT
freezes them.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint.io import CheckpointError, atomic_torch_save, safe_torch_load
from ..data.constants import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD
from ..utils.events import try_put_scalar
from .common import stack_images

__all__ = ["VQTokenizer", "DalleTokenizer", "build_tokenizer", "save_tokenizer", "TOKENIZER_TAG"]

TOKENIZER_TAG = "vitdet_bench.tokenizer"


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class VQTokenizer(nn.Module):
    """A VQ-VAE whose codes are BEiT's targets; trained with the engine like any model.

    Encoder: ``log2(patch_size)`` stride-2 convs then a residual block and a 1x1 projection to
    ``code_dim``; nearest-codebook quantisation with the straight-through gradient, codebook and
    commitment losses (beta 0.25); a mirrored transposed-conv decoder reconstructs the image. The
    codebook is initialised from the first batch's encoder outputs, and codes whose running usage
    falls below ``dead_code_threshold`` of uniform are restarted from random encoder outputs of
    the current batch (dead codes are the usual failure of VQ training on small data; Jukebox /
    SoundStream restart them the same way); codes and encodings are L2-normalised (cosine
    distance), as VQ-KD / ViT-VQGAN do, which keeps code usage spread.

    Args:
        patch_size: total downsampling (the ViT's patch size; a power of 2).
        vocab_size: codebook entries (BEiT: 8192).
        code_dim: code width.
        hidden_dim: conv width.
        commitment: weight of the commitment loss.
        dead_code_threshold: restart codes used less than this fraction of ``1 / vocab_size``
            (running average); 0 disables restarts.
        pixel_mean, pixel_std: input normalisation on the 0-255 scale.
    """

    def __init__(
        self,
        patch_size: int = 16,
        vocab_size: int = 8192,
        code_dim: int = 32,
        hidden_dim: int = 128,
        commitment: float = 0.25,
        dead_code_threshold: float = 0.03,
        pixel_mean: tuple = IMAGENET_PIXEL_MEAN,
        pixel_std: tuple = IMAGENET_PIXEL_STD,
    ) -> None:
        super().__init__()
        levels = int(round(math.log2(patch_size)))
        if 2**levels != patch_size:
            raise ValueError(f"patch_size must be a power of 2, got {patch_size}")
        self.config = dict(patch_size=patch_size, vocab_size=vocab_size, code_dim=code_dim, hidden_dim=hidden_dim,
                           commitment=commitment, dead_code_threshold=dead_code_threshold,
                           pixel_mean=tuple(pixel_mean), pixel_std=tuple(pixel_std))
        self.dead_code_threshold = dead_code_threshold
        self.patch_size = patch_size
        self.vocab_size = vocab_size
        self.commitment = commitment
        enc: list[nn.Module] = []
        c = 3
        for _ in range(levels):
            enc += [nn.Conv2d(c, hidden_dim, 4, stride=2, padding=1), nn.ReLU()]
            c = hidden_dim
        enc += [_ResBlock(hidden_dim), nn.ReLU(), nn.Conv2d(hidden_dim, code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(code_dim, hidden_dim, 3, padding=1), _ResBlock(hidden_dim)]
        for i in range(levels):
            out_dim = hidden_dim if i < levels - 1 else 3
            dec += [nn.ReLU(), nn.ConvTranspose2d(hidden_dim, out_dim, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.codebook = nn.Embedding(vocab_size, code_dim)
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("usage", torch.full((vocab_size,), 1.0 / vocab_size))
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, -1, 1, 1), persistent=False)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.to(self.pixel_mean.device).float() - self.pixel_mean) / self.pixel_std
        return F.normalize(self.encoder(x), dim=1)  # (B, code_dim, h, w)

    def _codes(self) -> torch.Tensor:
        return F.normalize(self.codebook.weight, dim=1)

    def _nearest(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        return (flat @ self._codes().t()).argmax(dim=1).view(z.shape[0], z.shape[2], z.shape[3])

    @torch.no_grad()
    def get_codebook_indices(self, images: torch.Tensor) -> torch.Tensor:
        """Token ids ``(B, H/p, W/p)`` for images on the 0-255 scale."""
        return self._nearest(self._encode(images))

    @torch.no_grad()
    def _init_codebook(self, z: torch.Tensor) -> None:
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        picks = torch.randint(0, flat.shape[0], (self.vocab_size,), device=flat.device)
        noise = 0.01 * torch.randn(self.vocab_size, flat.shape[1], device=flat.device)
        self.codebook.weight.copy_(flat[picks] + noise)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _restart_dead_codes(self, z: torch.Tensor, ids: torch.Tensor, decay: float = 0.9) -> None:
        counts = torch.bincount(ids.flatten(), minlength=self.vocab_size).float()
        self.usage.mul_(decay).add_(counts / counts.sum(), alpha=1 - decay)
        dead = self.usage < self.dead_code_threshold / self.vocab_size
        n = int(dead.sum())
        if n == 0:
            return
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        picks = torch.randint(0, flat.shape[0], (n,), device=flat.device)
        self.codebook.weight[dead] = flat[picks] + 0.01 * torch.randn(n, flat.shape[1], device=flat.device)
        self.usage[dead] = 1.0 / self.vocab_size

    def forward(self, batch: list[dict] | torch.Tensor) -> dict[str, torch.Tensor]:
        """Training losses for a batch of mapped samples (or a ``(B, 3, H, W)`` 0-255 tensor)."""
        device = self.pixel_mean.device
        images = batch.to(device) if isinstance(batch, torch.Tensor) else stack_images(batch, device=device)
        z = self._encode(images)
        if self.training and not bool(self.initialized):
            self._init_codebook(z)
        ids = self._nearest(z.detach())
        if self.training and self.dead_code_threshold > 0:
            self._restart_dead_codes(z.detach(), ids)
        zq = self._codes()[ids].permute(0, 3, 1, 2)
        loss_codebook = F.mse_loss(zq, z.detach())
        loss_commit = F.mse_loss(z, zq.detach()) * self.commitment
        zq = z + (zq - z).detach()  # straight-through
        recon = self.decoder(zq)
        target = (images - self.pixel_mean) / self.pixel_std
        with torch.no_grad():
            used = torch.unique(ids).numel()
        try_put_scalar("tokenizer/codes_used", float(used))
        return {"loss_recon": F.mse_loss(recon, target), "loss_codebook": loss_codebook, "loss_commit": loss_commit}


class DalleTokenizer(nn.Module):
    """DALL-E's dVAE encoder (BEiT's tokenizer) from a user-supplied ``encoder.pkl``.

    BEiT feeds it a half-resolution view (112 px for a 224 model, so 8x downsampling gives the
    14 x 14 grid) mapped by ``map_pixels`` (x -> 0.8 x + 0.1); here that view is the model input
    resized by half.

    Args:
        weights: path to DALL-E's ``encoder.pkl``. It is a whole pickled module, so it is loaded
            with ``weights_only=False``: only pass a file you trust.
    """

    vocab_size = 8192

    def __init__(self, weights: str) -> None:
        super().__init__()
        try:
            import dall_e  # noqa: F401  (the pickle refers to its classes)
        except ImportError as e:
            raise ImportError(
                "The DALL-E tokenizer needs OpenAI's `DALL-E` package (`pip install DALL-E`) and its dVAE "
                "encoder weights `encoder.pkl` (published by OpenAI at https://cdn.openai.com/dall-e/encoder.pkl; "
                "nothing here downloads it). Without them, train the project's own tokenizer with "
                "tools/train_tokenizer.py and use build_tokenizer(kind='vq', path=...)."
            ) from e
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"DALL-E encoder weights not found: {weights} (download encoder.pkl from OpenAI "
                                    "first)")
        self.encoder = torch.load(weights, map_location="cpu", weights_only=False)
        self.encoder.requires_grad_(False)
        self.patch_size = 16

    @torch.no_grad()
    def get_codebook_indices(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        x = F.interpolate(x, scale_factor=0.5, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        x = (1 - 2 * 0.1) * x + 0.1  # dall_e.map_pixels
        return self.encoder(x).argmax(dim=1)


def save_tokenizer(model: VQTokenizer, path: str, meta: dict | None = None) -> str:
    """Write a trained :class:`VQTokenizer` with the arguments that rebuild it."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"format": TOKENIZER_TAG, "kind": "vq", "config": dict(model.config), "model": state,
                       "meta": dict(meta or {})}, path)
    return path


def build_tokenizer(kind: str = "vq", path: str = "") -> nn.Module:
    """A frozen tokenizer for BEiT: ``kind="vq"`` reads a file from ``tools/train_tokenizer.py``;
    ``kind="dalle"`` reads DALL-E's ``encoder.pkl``."""
    if kind == "dalle":
        tok = DalleTokenizer(path)
    elif kind == "vq":
        if not path or not os.path.isfile(path):
            raise FileNotFoundError(
                f"BEiT tokenizer file not found: {path!r}. Train one first: python tools/train_tokenizer.py "
                "--config-file projects/BEiT/configs/tokenizer_vq_demo.py (it writes tokenizer_final.pth)"
            )
        data = safe_torch_load(path)
        if not isinstance(data, dict) or data.get("format") != TOKENIZER_TAG:
            raise CheckpointError(f"{path} is not a tokenizer written by tools/train_tokenizer.py")
        tok = VQTokenizer(**data["config"])
        tok.load_state_dict(data["model"])
    else:
        raise ValueError(f"tokenizer kind must be 'vq' or 'dalle', got {kind!r}")
    tok.eval().requires_grad_(False)
    return tok
