"""Small ViTs for tests: this project's (``tiny_vit``) and timm's (``timm_vit``) with non-trivial
weights, and the same timm weights in each official container (MAE, MAE fine-tuned, DeiT, MoCo v3,
timm), as the official code writes them (key lists in ``tests/fixtures/official_key_lists.json``)."""

import argparse

import torch
from timm.models.vision_transformer import VisionTransformer

from vitdet_bench.modeling import ViT

__all__ = ["GRID", "IMG", "containers", "randomize", "timm_vit", "tiny_vit"]

IMG = 96
GRID = IMG // 16


def tiny_vit(**kwargs):
    args = dict(img_size=96, patch_size=16, embed_dim=64, depth=2, num_heads=4, pretrain_img_size=96)
    args.update(kwargs)
    return ViT(**args)


def randomize(module, std=0.05, seed=0):
    """Non-trivial values everywhere (biases, tables, layer scale), reproducibly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g) * std
            p.copy_(1.0 + noise if name.endswith(("norm1.weight", "norm2.weight")) else noise)
    return module


def timm_vit(img_size=IMG, **kw):
    args = dict(img_size=img_size, patch_size=16, embed_dim=64, depth=2, num_heads=4, num_classes=10)
    args.update(kw)
    return randomize(VisionTransformer(**args), seed=1).eval()


def containers(state):
    """The same weights in each official container (key lists: tests/fixtures/official_key_lists.json)."""
    enc = {k: v for k, v in state.items() if not k.startswith("head.")}
    mae_pretrain = {
        "model": {**enc, "mask_token": torch.zeros(1, 1, 32), "decoder_embed.weight": torch.zeros(32, 64),
                  "decoder_pos_embed": torch.zeros(1, GRID * GRID + 1, 32),
                  "decoder_blocks.0.norm1.weight": torch.ones(32),
                  "decoder_pred.weight": torch.zeros(768, 32)},
        "optimizer": {"state": {}, "param_groups": []},
        "epoch": 799,
        "args": argparse.Namespace(model="mae_vit_base_patch16", norm_pix_loss=True, blr=1.5e-4, input_size=224),
    }
    mae_finetuned = {"model": {("fc_norm." + k[5:] if k.startswith("norm.") else k): v for k, v in state.items()}}
    deit = {"model": dict(state), "args": argparse.Namespace(model="deit_base_patch16_224", drop_path=0.1)}
    moco = {"epoch": 300, "arch": "vit_base", "optimizer": {"state": {}, "param_groups": []}, "state_dict": {}}
    for k, v in enc.items():
        moco["state_dict"]["module.base_encoder." + k] = v
        moco["state_dict"]["module.momentum_encoder." + k] = v + 1.0
    for i in (0, 1, 3, 4, 6, 7):
        moco["state_dict"][f"module.base_encoder.head.{i}.weight"] = torch.zeros(8)
        moco["state_dict"][f"module.momentum_encoder.head.{i}.weight"] = torch.zeros(8)
    moco["state_dict"]["module.predictor.0.weight"] = torch.zeros(8, 8)
    return {"mae": mae_pretrain, "mae_finetuned": mae_finetuned, "deit": deit, "mocov3": moco, "timm": dict(state)}
