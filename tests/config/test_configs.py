"""Every config file loads and builds its model at full size (on the meta device: shapes, no
memory), with the paper's parameter counts and the per-initialization hyper-parameters."""

import glob
import os

import pytest
import torch

from vitdet_bench.config import LazyConfig, instantiate

from helpers import REPO

CONFIGS = sorted(
    os.path.relpath(p, REPO)
    for pattern in ("configs/COCO/*.py", "configs/common/models/*.py", "configs/demo/*.py")
    for p in glob.glob(os.path.join(REPO, pattern))
)

# Published totals: ViTDet paper Table 5 (Mask R-CNN ViT-B 111M, ViT-L 331M).
PUBLISHED_M = {"configs/COCO/mask_rcnn_vitdet_b_mae_100ep.py": 111, "configs/COCO/mask_rcnn_vitdet_l_mae_100ep.py": 331}
BACKBONE_M = {12: 86, 24: 304}  # ViT-B / ViT-L encoders without cls token and head


def _vit(model):
    """The backbone under the neck: the ViT (under the adapter or the simple pyramid) or a ConvViT (FPN input)."""
    if hasattr(model.backbone, "net"):
        return model.backbone.net
    return getattr(model.backbone.bottom_up, "net", model.backbone.bottom_up)


@pytest.mark.parametrize("path", CONFIGS)
def test_config_builds_at_full_size(path):
    cfg = LazyConfig.load(os.path.join(REPO, path))
    if cfg.model.num_classes is None:
        cfg.model.num_classes = 4  # the demo configs take it from the dataset
    with torch.device("meta"):
        model = instantiate(cfg.model)
    total = sum(p.numel() for p in model.parameters()) / 1e6
    vit = _vit(model)
    if path in PUBLISHED_M:
        assert abs(total - PUBLISHED_M[path]) / PUBLISHED_M[path] < 0.01, total
    if vit.depth in BACKBONE_M and vit.embed_dim in (768, 1024):
        backbone = sum(p.numel() for p in vit.parameters()) / 1e6
        assert abs(backbone - BACKBONE_M[vit.depth]) / BACKBONE_M[vit.depth] < 0.01, backbone


# (lr, weight decay, drop path, epochs) from the benchmarking paper, Sec. 4.1 / Table 1.
TABLE1 = {
    "random": (1.6e-4, 0.2, 400),
    "supervised": (8e-5, 0.1, 100),
    "mocov3": (1.6e-4, 0.1, 100),
    "beit": (8e-5, 0.1, 100),
    "mae": (8e-5, 0.1, 100),
}


@pytest.mark.parametrize("size,dp", [("b", 0.1), ("l", 0.3)])
@pytest.mark.parametrize("init", list(TABLE1))
def test_table1_files_carry_the_papers_hyper_parameters(init, size, dp):
    lr, wd, epochs = TABLE1[init]
    cfg = LazyConfig.load(os.path.join(REPO, "configs", "COCO", f"mask_rcnn_vit_{size}_{init}_{epochs}ep.py"))
    vit = cfg.model.backbone.bottom_up.net
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay, vit.drop_path_rate) == (lr, wd, dp)
    assert cfg.train.max_iter == round(epochs * 118000 / 64) and cfg.dataloader.train.total_batch_size == 64
    assert vit.rel_pos_bias == "shared" and vit.use_abs_pos  # both kinds of position, every init
    assert (vit.get("init_values") == 0.1) == (init == "beit")  # layer scale for BEiT only
    assert bool(cfg.train.init_checkpoint) == (init != "random")
    if init != "random":  # each row's own weights (MoCo v3's ViT-L was not released: this project's run)
        assert os.path.basename(cfg.train.init_checkpoint) == CHECKPOINTS[init][size], cfg.train.init_checkpoint
    # The row file holds only what differs from the shared recipe.
    with open(os.path.join(REPO, "configs", "COCO", f"mask_rcnn_vit_{size}_{init}_{epochs}ep.py")) as f:
        assert "drop_path_rate" not in f.read()


CHECKPOINTS = {
    "supervised": {"b": "deit_base_patch16_224-b5f2ef4d.pth", "l": "vit_large_supervised_mae_recipe.pth"},
    "mocov3": {"b": "vit-b-300ep.pth.tar", "l": "backbone_final.pth"},
    "beit": {"b": "beit_base_patch16_224_pt1k_800ep.pth", "l": "beit_large_patch16_224_pt1k_800ep.pth"},
    "mae": {"b": "mae_pretrain_vit_base.pth", "l": "mae_pretrain_vit_large.pth"},
}


ALL_CONFIG_FILES = sorted(
    os.path.relpath(p, REPO)
    for pattern in ("configs/**/*.py", "projects/*/configs/*.py", "projects/common/pretrain_base.py")
    for p in glob.glob(os.path.join(REPO, pattern), recursive=True)
    if os.path.basename(p) != "__init__.py"
)


@pytest.mark.parametrize("path", ALL_CONFIG_FILES)
def test_every_public_name_of_a_config_is_a_setting(path):
    """LazyConfig keeps a file's public dicts and configs and drops everything else (as
    Detectron2's), so a public ``arch = "vit_t"`` would read like a setting and do nothing. A
    file's own constants are ``_private``; its public names are nodes."""
    import ast

    from omegaconf import DictConfig, ListConfig

    from vitdet_bench.config.lazy import _patch_import, _random_package_name

    filename = os.path.join(REPO, path)
    with open(filename, encoding="utf-8") as f:
        source = f.read()
    assigned, imported = [], []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        assigned += [t.id for t in targets if isinstance(t, ast.Name) and not t.id.startswith("_")]
        if isinstance(node, ast.ImportFrom):
            imported += [a.asname or a.name for a in node.names if not (a.asname or a.name).startswith("_")]
    namespace = {"__file__": filename, "__package__": _random_package_name(filename)}
    with _patch_import():
        exec(compile(source, filename, "exec"), namespace)
    dead = [n for n in dict.fromkeys(assigned) if not isinstance(namespace[n], (DictConfig, ListConfig, dict))]
    assert not dead, (f"{path}: {dead} are not config nodes (LazyConfig drops them): name them _{dead[0]} or make "
                      "them nodes")
    # A constant imported from a helper module (``DEMO_VIT``) would be saved as a setting of its own.
    constants = [n for n in imported if n.isupper() and isinstance(namespace[n], (DictConfig, ListConfig, dict))]
    assert not constants, f"{path}: {constants} are constants, not settings: import them as _{constants[0]}"
    # ``vit = model.backbone.bottom_up.net``: LazyConfig would keep a second copy under ``vit``, so an
    # override ``vit.drop_path_rate=...`` would change the copy and not the model.
    nodes = {n: v for n, v in namespace.items() if isinstance(v, (DictConfig, ListConfig)) and not n.startswith("_")}
    inner = {id(x) for n, v in nodes.items() for x in _sub_nodes(v)}
    aliases = [n for n, v in nodes.items() if id(v) in inner]
    assert not aliases, f"{path}: {aliases} alias part of another node: name them _{aliases[0]}"


def _sub_nodes(node):
    """Every config node strictly below ``node``."""
    from omegaconf import DictConfig, ListConfig

    if isinstance(node, DictConfig):
        children = [v for _, v in node.items_ex(resolve=False)]
    else:
        children = [node._get_node(i) for i in range(len(node))] if isinstance(node, ListConfig) else []
    for child in children:
        if isinstance(child, (DictConfig, ListConfig)):
            yield child
            yield from _sub_nodes(child)
