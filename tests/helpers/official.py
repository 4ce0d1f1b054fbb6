"""The official models, transcribed so their ``state_dict()`` is the official layout and their forward
the official loss: MAE's ``models_mae.MaskedAutoencoderViT`` (on timm's ``PatchEmbed`` / ``Block``),
BEiT's pre-training forward written out by hand (the shared bias table with its 3 cls rows), and
ConvMAE-B's state dict as ``models_convmae.py`` names and shapes it. Sizes: width 32, 2 blocks, 2
heads, 64 px, patch 16 (MAE's decoder: width 16, 2 heads, 1 block)."""

import argparse
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block

from vitdet_bench.pretrain import build_pretrain_encoder

__all__ = [
    "DEC_DIM",
    "DEC_HEADS",
    "DEPTH",
    "DIM",
    "GRID",
    "HEADS",
    "IMG",
    "N",
    "P",
    "VOCAB",
    "OfficialMAE",
    "StubTokenizer",
    "beit_encoder",
    "fixed_mask",
    "mae_training_file",
    "official_convmae_base_state",
    "official_index",
    "official_logits",
    "official_state",
    "randomize",
    "save",
]

DIM, DEPTH, HEADS, IMG, P = 32, 2, 2, 64, 16
GRID = IMG // P
N = GRID * GRID
DEC_DIM, DEC_HEADS = 16, 2
VOCAB = 16


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Every float tensor (parameters and buffers) drawn anew, so no init coincidence hides a
    tensor that was not loaded."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * (0.05 if t.ndim == 4 else 0.3) + ("var" in name))
    return module


def save(tmp_path, name: str, obj) -> str:
    path = str(tmp_path / name)
    torch.save(obj, path)
    return path


# --- MAE -------------------------------------------------------------------------------------------

class OfficialMAE(nn.Module):
    """``models_mae.MaskedAutoencoderViT`` (timm's PatchEmbed and Block, LayerNorm eps 1e-6)."""

    def __init__(self, dim: int = DIM, depth: int = DEPTH, img: int = IMG) -> None:
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.patch_embed = PatchEmbed(img, P, 3, dim)
        n = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim), requires_grad=False)
        self.blocks = nn.ModuleList(Block(dim, HEADS, 4.0, qkv_bias=True, norm_layer=norm) for _ in range(depth))
        self.norm = norm(dim)
        self.decoder_embed = nn.Linear(dim, DEC_DIM)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, DEC_DIM))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, n + 1, DEC_DIM), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(DEC_DIM, DEC_HEADS, 4.0, qkv_bias=True, norm_layer=norm)])
        self.decoder_norm = norm(DEC_DIM)
        self.decoder_pred = nn.Linear(DEC_DIM, P * P * 3)

    def forward(self, imgs: torch.Tensor, noise: torch.Tensor, mask_ratio: float = 0.75) -> torch.Tensor:
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]
        n, length, d = x.shape
        keep = int(length * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        x = torch.gather(x, 1, ids_shuffle[:, :keep].unsqueeze(-1).repeat(1, 1, d))
        mask = torch.ones(n, length)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        x = torch.cat(((self.cls_token + self.pos_embed[:, :1]).expand(n, -1, -1), x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.decoder_embed(self.norm(x))
        tokens = torch.cat((x[:, 1:], self.mask_token.repeat(n, length + 1 - x.shape[1], 1)), dim=1)
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat((x[:, :1], tokens), dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        pred = self.decoder_pred(self.decoder_norm(x))[:, 1:]
        h = imgs.shape[2] // P
        target = torch.einsum("nchpwq->nhwpqc", imgs.reshape(n, 3, h, P, h, P)).reshape(n, h * h, P * P * 3)
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5  # norm_pix_loss
        return (((pred - target) ** 2).mean(dim=-1) * mask).sum() / mask.sum()


def mae_training_file(state: dict) -> dict:
    """What ``main_pretrain.py``'s ``misc.save_model`` writes (the args pickled as a Namespace)."""
    return {"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 799, "scaler": {},
            "args": argparse.Namespace(model="mae_vit_base_patch16", norm_pix_loss=True, mask_ratio=0.75)}


# --- BEiT ------------------------------------------------------------------------------------------

class StubTokenizer(nn.Module):
    """Fixed visual tokens, so the loss is a function of the model alone."""

    vocab_size = VOCAB
    patch_size = P

    def __init__(self, ids: torch.Tensor) -> None:
        super().__init__()
        self.ids = ids

    def get_codebook_indices(self, images: torch.Tensor) -> torch.Tensor:
        return self.ids


def beit_encoder(**kw):
    args = dict(img_size=IMG, embed_dim=DIM, depth=DEPTH, num_heads=HEADS, pos_embed="none", rel_pos_bias="shared",
                init_values=0.1, qv_bias=True)
    args.update(kw)
    return build_pretrain_encoder("vit_t", **args)


def official_index(h: int, w: int) -> torch.Tensor:
    """modeling_finetune.RelativePositionBias's index, transcribed: offsets (dy, dx) of token
    pairs at rows 1.., then cls->token (row 0) = R - 3, token->cls (column 0) = R - 2 and
    cls->cls = R - 1, with R = (2h - 1)(2w - 1) + 3 table rows."""
    n, rows = h * w, (2 * h - 1) * (2 * w - 1) + 3
    index = torch.empty(n + 1, n + 1, dtype=torch.long)
    for i in range(n):
        for j in range(n):
            (yi, xi), (yj, xj) = divmod(i, w), divmod(j, w)
            index[i + 1, j + 1] = (yi - yj + h - 1) * (2 * w - 1) + (xi - xj + w - 1)
    index[0, :] = rows - 3
    index[:, 0] = rows - 2
    index[0, 0] = rows - 1
    return index


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random BEiT pre-training state dict in the official key names (checkpoint_formats.json,
    beit_vit_b16_pretrain_shared_relpos, at DIM / DEPTH / HEADS), cls rows non-zero."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    sd = {
        "cls_token": r(1, 1, DIM, scale=1.0),
        "mask_token": r(1, 1, DIM, scale=1.0),
        "patch_embed.proj.weight": r(DIM, 3, P, P, scale=0.05),
        "patch_embed.proj.bias": r(DIM),
        "rel_pos_bias.relative_position_bias_table": r((2 * GRID - 1) ** 2 + 3, HEADS, scale=1.0),
        "rel_pos_bias.relative_position_index": official_index(GRID, GRID),
        "norm.weight": 1 + r(DIM),
        "norm.bias": r(DIM),
        "lm_head.weight": r(VOCAB, DIM),
        "lm_head.bias": r(VOCAB),
    }
    for i in range(DEPTH):
        p = f"blocks.{i}."
        sd.update({
            p + "gamma_1": 0.5 + r(DIM), p + "gamma_2": 0.5 + r(DIM),
            p + "norm1.weight": 1 + r(DIM), p + "norm1.bias": r(DIM),
            p + "attn.q_bias": r(DIM), p + "attn.v_bias": r(DIM), p + "attn.qkv.weight": r(3 * DIM, DIM),
            p + "attn.proj.weight": r(DIM, DIM), p + "attn.proj.bias": r(DIM),
            p + "norm2.weight": 1 + r(DIM), p + "norm2.bias": r(DIM),
            p + "mlp.fc1.weight": r(4 * DIM, DIM), p + "mlp.fc1.bias": r(4 * DIM),
            p + "mlp.fc2.weight": r(DIM, 4 * DIM), p + "mlp.fc2.bias": r(DIM),
        })
    return sd


def official_logits(sd: dict, images: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """VisionTransformerForMaskedImageModeling.forward(images, masked), written out by hand:
    mask token in, cls token first, every block adds the shared bias (cls rows included) to the
    scaled logits before softmax, layer scale, final norm, lm_head on the masked tokens."""
    x = F.conv2d(images, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=P)
    b, d, gh, gw = x.shape
    x = x.flatten(2).transpose(1, 2)
    w = masked.flatten(1).unsqueeze(-1).float()
    x = x * (1 - w) + sd["mask_token"] * w
    x = torch.cat((sd["cls_token"].expand(b, -1, -1), x), dim=1)
    length = x.shape[1]
    index = official_index(gh, gw)
    bias = sd["rel_pos_bias.relative_position_bias_table"][index.view(-1)].view(length, length, -1).permute(2, 0, 1)
    hd = d // HEADS
    for i in range(DEPTH):
        p = f"blocks.{i}."
        h = F.layer_norm(x, (d,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
        qkv_bias = torch.cat((sd[p + "attn.q_bias"], torch.zeros(d), sd[p + "attn.v_bias"]))
        qkv = (h @ sd[p + "attn.qkv.weight"].t() + qkv_bias).reshape(b, length, 3, HEADS, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * hd**-0.5) @ k.transpose(-2, -1) + bias).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, length, d)
        out = out @ sd[p + "attn.proj.weight"].t() + sd[p + "attn.proj.bias"]
        x = x + sd[p + "gamma_1"] * out
        h = F.layer_norm(x, (d,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-6)
        h = F.gelu(h @ sd[p + "mlp.fc1.weight"].t() + sd[p + "mlp.fc1.bias"])
        x = x + sd[p + "gamma_2"] * (h @ sd[p + "mlp.fc2.weight"].t() + sd[p + "mlp.fc2.bias"])
    x = F.layer_norm(x, (d,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)[:, 1:]
    return x[masked.flatten(1)] @ sd["lm_head.weight"].t() + sd["lm_head.bias"]


def fixed_mask(batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    masked = torch.zeros(batch, GRID, GRID, dtype=torch.bool)
    for b in range(batch):
        masked.view(batch, -1)[b, torch.randperm(N, generator=g)[:6]] = True
    return masked


# --- ConvMAE ---------------------------------------------------------------------------------------

def official_convmae_base_state() -> dict[str, torch.Tensor]:
    """ConvMAE-B's pre-training state dict as models_convmae.py (convmae_convvit_base_patch16_dec512d8b)
    names and shapes it: embed [256, 384, 768], depth [2, 2, 11], 12 heads, decoder 512 x 8, 224 px."""
    g = torch.Generator().manual_seed(0)
    shapes: dict[str, tuple] = {}

    def block(prefix, dim, conv):
        for n in ("norm1", "norm2"):
            shapes[f"{prefix}.{n}.weight"] = shapes[f"{prefix}.{n}.bias"] = (dim,)
        if conv:  # CBlock: conv1, depthwise 5x5 "attn", conv2, 1x1-conv MLP
            shapes.update({f"{prefix}.conv1.weight": (dim, dim, 1, 1), f"{prefix}.conv2.weight": (dim, dim, 1, 1),
                           f"{prefix}.attn.weight": (dim, 1, 5, 5), f"{prefix}.mlp.fc1.weight": (4 * dim, dim, 1, 1),
                           f"{prefix}.mlp.fc2.weight": (dim, 4 * dim, 1, 1)})
            for n in ("conv1", "conv2", "attn", "mlp.fc2"):
                shapes[f"{prefix}.{n}.bias"] = (dim,)
        else:  # timm 0.3.2 Block
            shapes.update({f"{prefix}.attn.qkv.weight": (3 * dim, dim), f"{prefix}.attn.qkv.bias": (3 * dim,),
                           f"{prefix}.attn.proj.weight": (dim, dim), f"{prefix}.attn.proj.bias": (dim,),
                           f"{prefix}.mlp.fc1.weight": (4 * dim, dim), f"{prefix}.mlp.fc2.weight": (dim, 4 * dim),
                           f"{prefix}.mlp.fc2.bias": (dim,)})
        shapes[f"{prefix}.mlp.fc1.bias"] = (4 * dim,)

    for i, (cin, cout, p) in enumerate(((3, 256, 4), (256, 384, 2), (384, 768, 2)), start=1):
        shapes.update({f"patch_embed{i}.proj.weight": (cout, cin, p, p), f"patch_embed{i}.proj.bias": (cout,),
                       f"patch_embed{i}.norm.weight": (cout,), f"patch_embed{i}.norm.bias": (cout,)})
    shapes.update({"patch_embed4.weight": (768, 768), "patch_embed4.bias": (768,),
                   "stage1_output_decode.weight": (768, 256, 4, 4), "stage1_output_decode.bias": (768,),
                   "stage2_output_decode.weight": (768, 384, 2, 2), "stage2_output_decode.bias": (768,),
                   "pos_embed": (1, 196, 768), "norm.weight": (768,), "norm.bias": (768,),
                   "decoder_embed.weight": (512, 768), "decoder_embed.bias": (512,), "mask_token": (1, 1, 512),
                   "decoder_pos_embed": (1, 196, 512), "decoder_norm.weight": (512,), "decoder_norm.bias": (512,),
                   "decoder_pred.weight": (768, 512), "decoder_pred.bias": (768,)})
    for i in range(2):
        block(f"blocks1.{i}", 256, True)
        block(f"blocks2.{i}", 384, True)
    for i in range(11):
        block(f"blocks3.{i}", 768, False)
    for i in range(8):
        block(f"decoder_blocks.{i}", 512, False)
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}
