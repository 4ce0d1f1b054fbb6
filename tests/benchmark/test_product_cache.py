"""Pre-training products cached by content (benchmark/product_cache.py): a second benchmark into
another output directory reuses them and says so; another config, or other code, misses."""

import json
import os

import pytest
import torch

from vitdet_bench.benchmark import Runner, load_benchmark
from vitdet_bench.benchmark.product_cache import REUSED_FILE, product_key

from conftest import REPO

BENCH = """
benchmark = dict(
    name="cache",
    output_dir="{out}",
    detection_overrides=["train.max_iter=1", "train.eval_period=-1", "dataloader.train.total_batch_size=2",
                         "lr_multiplier.warmup_iters=1", "train.checkpointer.period=0",
                         "dataloader.test.dataset.names=demo_minival"],
    pretrain_overrides=["train.max_iter=2", "lr_multiplier.warmup_iters=1", "dataloader.train.total_batch_size=4",
                        "train.log_period=1", "dataloader.train.dataset.size=64"],
    tide=False,
    cost=False,
    inits=dict(beit=dict(config="{repo}/configs/demo/bench/beit.py", pretrain=[
        dict(name="tokenizer", tool="tokenizer", config="{repo}/projects/BEiT/configs/tokenizer_vq_demo.py"),
        dict(name="beit", config="{repo}/projects/BEiT/configs/beit_vit_tiny_demo.py",
             overrides=["tokenizer.path={{tokenizer}}/tokenizer_final.pth"])])),
)
"""


def _spec(tmp_path, name, extra=""):
    path = tmp_path / f"{name}.py"
    path.write_text(BENCH.format(out=tmp_path / name, repo=REPO) + extra)
    return load_benchmark(str(path))


def test_a_second_benchmark_reuses_the_chain_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("VITDET_BENCH_CACHE", str(tmp_path / "cache"))  # no product of an earlier session
    first = Runner(_spec(tmp_path, "first"), progress=False)
    init = first.spec.inits[0]
    keys = first._product_keys(init)
    for step in init.pretrain:
        first._pretrain(init, step)
    second_spec = _spec(tmp_path, "second")
    second = Runner(second_spec, progress=False)
    # The chain's keys do not depend on the output directory (BEiT's tokenizer path is its key).
    assert second._product_keys(init) == keys and keys["tokenizer"] != keys["beit"]
    import vitdet_bench.pretrain.engine as engine

    monkeypatch.setattr(engine, "pretrain_main", lambda *a, **k: pytest.fail("pre-trained again"))
    for step in init.pretrain:
        second._pretrain(init, step)
    for step in init.pretrain:
        out = second_spec.pretrain_dir(init.name, step.name)
        made = json.load(open(os.path.join(out, REUSED_FILE)))
        assert made["step_dir"] == os.path.abspath(first.spec.pretrain_dir(init.name, step.name))
        assert os.path.isfile(os.path.join(out, "metrics.json")) and os.path.isfile(os.path.join(out, "config.yaml"))
    a = torch.load(os.path.join(first.spec.pretrain_dir("beit", "beit"), "backbone_final.pth"), weights_only=True)
    b = torch.load(os.path.join(second_spec.pretrain_dir("beit", "beit"), "backbone_final.pth"), weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    stages = {s["stage"]: s for s in second.stages()}
    assert "reused from the cache" in stages["pre-train beit/beit"]["note"]


def test_another_config_or_other_code_is_another_key(tmp_path, monkeypatch):
    config = os.path.join(REPO, "projects/MAE/configs/mae_vit_tiny_demo.py")
    base = product_key(config, ["train.output_dir=/a"], {}, {})
    assert product_key(config, ["train.output_dir=/b"], {}, {}) == base  # the output directory is not content
    assert product_key(config, ["train.max_iter=3"], {}, {}) != base
    assert product_key(config, ["train.seed=1"], {}, {}) != base
    import vitdet_bench.benchmark.product_cache as cache

    monkeypatch.setattr(cache, "code_version", lambda: "another version")
    assert product_key(config, [], {}, {}) != base
