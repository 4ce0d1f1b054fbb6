"""Every config file loads and builds its model at full size (on the meta device: shapes, no
memory), with the paper's parameter counts and the per-initialization hyper-parameters."""

import glob
import os

import pytest
import torch

from conftest import REPO
from vitdet_bench.config import LazyConfig, instantiate

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
    assigned = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        assigned += [t.id for t in targets if isinstance(t, ast.Name) and not t.id.startswith("_")]
    namespace = {"__file__": filename, "__package__": _random_package_name(filename)}
    with _patch_import():
        exec(compile(source, filename, "exec"), namespace)
    dead = [n for n in dict.fromkeys(assigned) if not isinstance(namespace[n], (DictConfig, ListConfig, dict))]
    assert not dead, f"{path}: {dead} are not config nodes (LazyConfig drops them): name them _{dead[0]} or make them nodes"
