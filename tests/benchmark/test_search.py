"""The tuning protocol's logic (vitdet_bench/benchmark/search.py): grid, rings, drop path, selection."""

import math

import pytest

from vitdet_bench.benchmark.search import SearchSpec, plan_search, reused_values

PAPER = dict(mode="full", train_split="coco_2017_train_search", select_split="coco_2017_select",
             grid_schedule=dict(fraction=0.25), drop_path_schedule=dict(fraction=0.5),
             drop_path_schedule_random=dict(fraction=0.25))


def _run(spec, final_iters, is_random, score, fail=()):
    """Drive the protocol to its end with ``score(point)`` as each point's metric; the points run in
    the rounds the plan asks for. Returns (plan, rounds)."""
    metrics, finished, rounds = {}, set(), []
    while True:
        plan = plan_search(spec, final_iters, is_random, metrics, finished)
        if plan.chosen is not None:
            return plan, rounds
        rounds.append([p.name for p in plan.pending])
        for p in plan.pending:
            finished.add(p.name)
            metrics[p.name] = None if p.name in fail or any(f in p.name for f in fail) else score(p)


def test_the_paper_protocol_grid_then_drop_path_selects_the_argmax():
    """3 x 3 around (1.6e-4, 0.1) with x1/2 and x2 at 25% of the schedule, drop path 0; then drop
    path from {0, .1, .2, .3} at 50% (random init: 25% of its 400 epochs, i.e. 100). The choice is
    the argmax of the recorded metric."""
    spec = SearchSpec.from_dict(PAPER, "search")
    peak = (8e-5, 0.1, 0.1)

    def score(p):  # a smooth bowl with its top at lr 8e-5, wd 0.1, dp 0.1
        return (50 - 3 * math.log2(p.lr / peak[0]) ** 2 - 2 * math.log2(p.weight_decay / peak[1]) ** 2
                - 10 * abs(p.drop_path - peak[2]))

    plan, rounds = _run(spec, 10000, False, score)
    assert plan.chosen == {"lr": 8e-5, "weight_decay": 0.1, "drop_path": 0.1}
    grid = [p for p, _ in plan.points if p.stage == "grid"]
    # 8e-5 is on the 3 x 3 grid's lr border, so a ring adds the 4e-5 column; 8e-5 is then interior.
    assert sorted({p.lr for p in grid}) == [4e-5, 8e-5, 1.6e-4, 3.2e-4]
    assert sorted({p.weight_decay for p in grid}) == [0.05, 0.1, 0.2] and plan.expanded == 1
    assert {p.iters for p in grid} == {2500} and {p.drop_path for p in grid} == {0.0}
    assert [len(r) for r in rounds] == [9, 3, 4]
    dps = [p for p, _ in plan.points if p.stage == "drop_path"]
    assert [p.drop_path for p in dps] == [0.0, 0.1, 0.2, 0.3] and {p.iters for p in dps} == {5000}
    assert {(p.lr, p.weight_decay) for p in dps} == {(8e-5, 0.1)}
    best = max(((p, m) for p, m in plan.points if p.stage == "grid"), key=lambda x: x[1])[0]
    assert (best.lr, best.weight_decay) == plan.grid_choice


def test_a_border_best_adds_a_ring_and_the_cap_stops_it():
    """The metric keeps rising towards small lr: every round the best sits on the border, so a new
    column (lr / 2) is added, until max_rounds rings."""
    spec = SearchSpec.from_dict({**PAPER, "mode": "grid", "max_rounds": 2}, "search")
    plan, rounds = _run(spec, 400, False, lambda p: -p.lr * 1e4 - abs(p.weight_decay - 0.1))
    assert [len(r) for r in rounds] == [9, 3, 3]  # 3 x 3, then one new lr column of 3 wd values, twice
    assert plan.expanded == 2
    assert plan.chosen == {"lr": 2e-5, "weight_decay": 0.1, "drop_path": 0.0}  # 1.6e-4 / 8, the cap's edge
    assert sorted({p.lr for p, _ in plan.points}) == [2e-5, 4e-5, 8e-5, 1.6e-4, 3.2e-4]
    capped, _ = _run(SearchSpec.from_dict({**PAPER, "mode": "grid", "max_rounds": 0}, "search"), 400, False,
                     lambda p: -p.lr * 1e4)
    assert capped.expanded == 0 and capped.chosen["lr"] == 8e-5
    corner, rounds = _run(SearchSpec.from_dict({**PAPER, "mode": "grid", "max_rounds": 1}, "search"), 400, False,
                          lambda p: p.lr * 1e4 + p.weight_decay)
    assert [len(r) for r in rounds] == [9, 7]  # a corner: a new row and a new column (4 x 4 - 3 x 3)
    assert corner.chosen == {"lr": 6.4e-4, "weight_decay": 0.4, "drop_path": 0.0}


def test_a_fixed_axis_never_expands_and_random_init_has_its_own_schedule():
    demo = SearchSpec.from_dict(dict(mode="grid", lr=dict(center=8e-4, factors=[0.5, 1, 2]),
                                     weight_decay=dict(center=0.1, factors=[1]), grid_schedule=dict(fraction=0.3),
                                     grid_schedule_random=dict(iters=200), max_rounds=1,
                                     train_split="demo_train_search", select_split="demo_select"), "search")
    plan, rounds = _run(demo, 500, False, lambda p: p.lr)
    assert [len(r) for r in rounds] == [3, 1] and plan.chosen["weight_decay"] == 0.1  # the wd axis stays fixed
    assert {p.iters for p, _ in plan.points} == {150}
    plan, _ = _run(demo, 500, True, lambda p: -p.lr)
    assert {p.iters for p, _ in plan.points} == {200}


def test_failed_points_are_left_out_and_named():
    spec = SearchSpec.from_dict({**PAPER, "mode": "grid", "max_rounds": 0}, "search")
    plan, _ = _run(spec, 400, False, lambda p: p.lr * 1e4, fail=("lr0.00032_wd0.1_",))
    assert plan.failed == [p.name for p, _ in plan.points if "lr0.00032_wd0.1_" in p.name]
    assert plan.chosen["lr"] == 3.2e-4 and plan.chosen["weight_decay"] != 0.1  # best of the rest
    with pytest.raises(RuntimeError, match="every point of the grid failed"):
        _run(spec, 400, False, lambda p: 1.0, fail=("grid",))


def test_seeds_average_per_point_and_name_their_runs():
    spec = SearchSpec.from_dict({**PAPER, "mode": "grid", "max_rounds": 0, "seeds": 2}, "search")
    plan, rounds = _run(spec, 400, False, lambda p: (p.lr * 1e4) * (1 if p.seed else -1) + p.weight_decay)
    assert len(rounds[0]) == 18 and sum("_seed1" in n for n in rounds[0]) == 9
    assert plan.chosen["weight_decay"] == 0.2  # the lr term cancels over the two seeds


def test_search_spec_errors_name_the_key():
    with pytest.raises(ValueError, match="search.mode must be one of"):
        SearchSpec.from_dict({"mode": "random"}, "search")
    with pytest.raises(ValueError, match="unknown search keys \\['lr_grid'\\]"):
        SearchSpec.from_dict({"lr_grid": [1]}, "search")
    with pytest.raises(ValueError, match="held_out' needs train_split and select_split"):
        SearchSpec.from_dict({"mode": "grid"}, "search")
    with pytest.raises(ValueError, match="search.grid_schedule must be dict"):
        SearchSpec.from_dict({**PAPER, "grid_schedule": dict(fraction=0.2, iters=3)}, "search")
    with pytest.raises(ValueError, match="search.lr must be dict"):
        SearchSpec.from_dict({**PAPER, "lr": dict(center=-1, factors=[1])}, "search")


def test_reuse_reads_a_finished_benchmarks_choice(tmp_path):
    import json

    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"inits": [{"name": "mae", "search": {"chosen": {"lr": 8e-5, "weight_decay": 0.1,
                                                                                  "drop_path": 0.1}}},
                                             {"name": "random", "search": None}]}))
    spec = SearchSpec.from_dict({**PAPER, "reuse": {"summary": str(summary)}}, "search")
    assert reused_values(spec, "mae") == (8e-5, 0.1)
    with pytest.raises(ValueError, match="has no chosen lr / weight decay for random.*\\['mae'\\]"):
        reused_values(spec, "random")
    plan, rounds = _run_reused(spec)
    assert [len(r) for r in rounds] == [4] and plan.chosen["lr"] == 8e-5 and plan.chosen["drop_path"] == 0.3
    missing = SearchSpec.from_dict({**PAPER, "reuse": {"summary": str(tmp_path / "none.json")}}, "search")
    with pytest.raises(ValueError, match="cannot read .*none.json.*coco_vit_b.py"):
        reused_values(missing, "mae")


def _run_reused(spec):
    metrics, finished, rounds = {}, set(), []
    while True:
        plan = plan_search(spec, 400, False, metrics, finished, reused=(8e-5, 0.1))
        if plan.chosen is not None:
            return plan, rounds
        rounds.append([p.name for p in plan.pending])
        for p in plan.pending:
            finished.add(p.name)
            metrics[p.name] = p.drop_path
