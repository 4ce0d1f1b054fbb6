"""LazyConfig: load (relative imports, YAML), save round trip, overrides, instantiate, errors."""

import os

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from vitdet_bench.config import ConfigKeyError, InstantiationError, L, LazyConfig, instantiate

from helpers import FIXTURES, REPO

HERE = os.path.join(FIXTURES, "configs")


def test_lazycall_records_and_instantiate_builds_nested():
    cfg = L(torch.nn.Sequential)()
    assert isinstance(cfg, DictConfig) and cfg._target_ is torch.nn.Sequential
    cfg = OmegaConf.create({"net": L(torch.nn.Linear)(in_features=3, out_features="${..dim}"), "dim": 5,
                            "opts": {"a": [1, {"b": 2}]}}, flags={"allow_objects": True})
    built = instantiate(cfg)
    assert isinstance(built["net"], torch.nn.Linear) and built["net"].out_features == 5
    # Mappings without a target come back as plain dicts / lists, not DictConfig.
    assert built["opts"] == {"a": [1, {"b": 2}]} and type(built["opts"]) is dict


def test_lazycall_rejects_positional_arguments():
    with pytest.raises(TypeError, match="keyword arguments only"):
        L(torch.nn.Linear)(3, 4)


def test_load_resolves_relative_imports_and_derived_edits_stay_local():
    derived = LazyConfig.load(os.path.join(HERE, "derived.py"))
    base = LazyConfig.load(os.path.join(HERE, "base.py"))
    assert derived.train.max_iter == 200 and base.train.max_iter == 100
    assert derived.extra.from_module == 8
    assert derived.optimizer.lr == 0.1  # interpolation resolves
    assert "base" not in derived  # modules are not config values
    assert instantiate(derived.layer).out_features == 8


def test_save_round_trip_is_equal_and_keeps_interpolations(tmp_path):
    cfg = LazyConfig.load(os.path.join(HERE, "derived.py"))
    path = str(tmp_path / "config.yaml")
    LazyConfig.save(cfg, path)
    text = open(path).read()
    assert "${train.lr}" in text and "torch.nn.modules.linear.Linear" in text
    again = LazyConfig.load(path)
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain["layer"]["_target_"] = "torch.nn.modules.linear.Linear"
    assert OmegaConf.to_container(again, resolve=False) == plain
    assert instantiate(again.layer).out_features == 8


def test_save_round_trip_of_the_demo_config(tmp_path):
    cfg = LazyConfig.load(os.path.join(REPO, "configs", "demo", "mask_rcnn_vit_tiny.py"))
    path = str(tmp_path / "config.yaml")
    LazyConfig.save(cfg, path)
    LazyConfig.save(LazyConfig.load(path), str(tmp_path / "again.yaml"))
    assert open(path).read() == open(tmp_path / "again.yaml").read()


def test_save_names_unserialisable_keys(tmp_path):
    cfg = OmegaConf.create({"a": {"f": L(lambda: 1)()}}, flags={"allow_objects": True})
    with pytest.raises(ValueError, match=r"a\.f\._target_"):
        LazyConfig.save(cfg, str(tmp_path / "x.yaml"))


def test_apply_overrides_values():
    cfg = LazyConfig.load(os.path.join(HERE, "base.py"))
    LazyConfig.apply_overrides(
        cfg, ["train.max_iter=7", "optimizer.betas=[1,2]", "train.output_dir=None", "train.amp.enabled=true",
              "+train.new_key=[1,2]", "train.lr=1e-4"]
    )
    assert cfg.train.max_iter == 7 and list(cfg.optimizer.betas) == [1, 2]
    assert cfg.train.output_dir is None and cfg.train.amp.enabled is True
    assert list(cfg.train.new_key) == [1, 2] and cfg.optimizer.lr == 1e-4


def test_override_of_unknown_key_names_closest_keys():
    cfg = LazyConfig.load(os.path.join(HERE, "base.py"))
    with pytest.raises(ConfigKeyError) as e:
        LazyConfig.apply_overrides(cfg, ["train.max_itr=5"])
    assert "train.max_itr" in str(e.value) and "train.max_iter" in str(e.value)


def test_syntax_error_names_file_and_line():
    with pytest.raises(SyntaxError) as e:
        LazyConfig.load(os.path.join(HERE, "bad_syntax.py"))
    assert "bad_syntax.py" in str(e.value) and "line 1" in str(e.value)


def test_missing_relative_import_names_both_files():
    with pytest.raises(ImportError) as e:
        LazyConfig.load(os.path.join(HERE, "bad_import.py"))
    assert "bad_import.py" in str(e.value) and "does_not_exist.py" in str(e.value)


def test_instantiate_error_names_config_key_and_suggests_argument():
    cfg = OmegaConf.create({"model": {"head": L(torch.nn.Linear)(in_feature=3, out_features=2)}},
                           flags={"allow_objects": True})
    with pytest.raises(InstantiationError) as e:
        instantiate(cfg)
    msg = str(e.value)
    assert "model.head" in msg and "torch.nn.modules.linear.Linear" in msg and "in_features" in msg
