"""The benchmarking paper's tuning protocol as a benchmark stage (Li et al. 2021, Sec. 4.1).

Every initialization is tuned the same way before its final run: with drop path fixed (0), a grid
of learning rate x weight decay on a short schedule (the paper: 3 x 3 around (1.6e-4, 0.1) with
x1/2 and x2 steps, 25 epochs, 100 for random init), expanded by one ring when the best point lies
on the grid's border; then drop path chosen from a few values at the chosen lr / wd on a longer
schedule (50 epochs, 100 for random init); ViT-L reuses ViT-B's lr and wd. Each point is an
ordinary detection run that trains on a split held out from the reported validation set and is
scored there (``select_on="val"`` reproduces the paper's practice of tuning on val2017, and the
report says so).

:class:`SearchSpec` is a benchmark file's ``search`` dict. :func:`plan_search` is the protocol as a
pure function of the points finished so far: given the metrics read from their run directories it
returns the points still to run, or the choice. The sequential runner loops over it; on a cluster a
small selection job runs it after each round and submits the next (``Runner.search_step``). A
failed point is reported and the selection uses the others.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field

__all__ = ["SEARCH_MODES", "SearchPoint", "SearchPlan", "SearchSpec", "StageSchedule", "find_drop_path_key",
           "plan_search", "plan_to_dict", "reused_values", "search_dir"]

SEARCH_MODES = ("none", "grid", "full")


@dataclass
class StageSchedule:
    """A search stage's length: ``iters`` iterations, or ``fraction`` of the init's final schedule."""

    fraction: float | None = None
    iters: int | None = None

    @classmethod
    def from_dict(cls, d, where: str) -> "StageSchedule | None":
        if d is None:
            return None
        if (not isinstance(d, dict) or set(d) - {"fraction", "iters"}
                or (d.get("fraction") is None) == (d.get("iters") is None)):
            raise ValueError(f"{where} must be dict(fraction=F) or dict(iters=N), got {d!r}")
        s = cls(float(d["fraction"]) if d.get("fraction") is not None else None,
                int(d["iters"]) if d.get("iters") is not None else None)
        if (s.fraction is not None and not 0 < s.fraction <= 1) or (s.iters is not None and s.iters < 1):
            raise ValueError(f"{where}: fraction must be in (0, 1] and iters >= 1, got {d!r}")
        return s

    def iters_for(self, final_iters: int) -> int:
        return self.iters if self.iters is not None else max(1, int(round(self.fraction * final_iters)))

    def describe(self) -> str:
        return f"{self.iters} iterations" if self.iters is not None else f"{self.fraction:g} of the final schedule"


@dataclass
class SearchSpec:
    """A benchmark file's ``search`` dict (see ``configs/benchmark/coco_vit_b.py`` for the paper's).

    Attributes:
        mode: "none" (the recipes' own values), "grid" (lr x wd), "full" (grid, then drop path).
        lr: ``dict(center=C, factors=[...])``: the lr values C x factor (every init's grid).
        weight_decay: the same for weight decay (one factor: the axis is fixed, not searched).
        expand: add a ring when the best point is on the border (an axis of several values).
        max_rounds: at most this many rings.
        drop_path: the drop-path candidates of the second stage; the grid runs at ``grid_drop_path``.
        grid_drop_path: the drop path of every grid point (the paper: 0).
        grid_schedule / grid_schedule_random: the grid stage's length (random init's own).
        drop_path_schedule / drop_path_schedule_random: the drop-path stage's length.
        seeds: fine-tuning seeds per point (its metric is their mean).
        metric: the ``metrics.json`` key selected on (``bbox/AP``: box AP).
        select_on: "held_out" (train on ``train_split``, score on ``select_split``) or "val" (the
            paper's practice: train on the training set, score on the reported val split).
        train_split / select_split: dataset names of the held-out protocol.
        drop_path_key: the config key of the backbone's drop path ("auto": the first ``drop_path_rate``
            under ``model`` in each init's config).
        reuse: skip the grid and take each init's lr / wd from a finished benchmark's
            ``summary.json`` (``dict(summary=PATH)``) or as stated (``dict(values={init: {"lr": ..,
            "weight_decay": ..}})``): the paper's ViT-L reuses ViT-B's.
        protocol: one line for the report ("the paper's protocol", "reduced for the CPU demo: ...").
    """

    mode: str = "none"
    lr: dict = field(default_factory=lambda: {"center": 1.6e-4, "factors": [0.5, 1.0, 2.0]})
    weight_decay: dict = field(default_factory=lambda: {"center": 0.1, "factors": [0.5, 1.0, 2.0]})
    expand: bool = True
    max_rounds: int = 2
    drop_path: list = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3])
    grid_drop_path: float = 0.0
    grid_schedule: StageSchedule = field(default_factory=lambda: StageSchedule(fraction=0.25))
    grid_schedule_random: StageSchedule | None = None
    drop_path_schedule: StageSchedule = field(default_factory=lambda: StageSchedule(fraction=0.5))
    drop_path_schedule_random: StageSchedule | None = None
    seeds: int = 1
    metric: str = "bbox/AP"
    select_on: str = "held_out"
    train_split: str | None = None
    select_split: str | None = None
    drop_path_key: str = "auto"
    reuse: dict | None = None
    protocol: str = ""

    KEYS = ("mode", "lr", "weight_decay", "expand", "max_rounds", "drop_path", "grid_drop_path", "grid_schedule",
            "grid_schedule_random", "drop_path_schedule", "drop_path_schedule_random", "seeds", "metric", "select_on",
            "train_split", "select_split", "drop_path_key", "reuse", "protocol")

    @classmethod
    def from_dict(cls, d: dict | None, where: str) -> "SearchSpec":
        d = dict(d or {})
        unknown = set(d) - set(cls.KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown search keys {sorted(unknown)} (known: {', '.join(cls.KEYS)})")
        for key in ("grid_schedule", "grid_schedule_random", "drop_path_schedule", "drop_path_schedule_random"):
            if key in d:
                d[key] = StageSchedule.from_dict(d[key], f"{where}.{key}")
        spec = cls(**d)
        spec.check(where)
        return spec

    def check(self, where: str) -> None:
        if self.mode not in SEARCH_MODES:
            raise ValueError(f"{where}.mode must be one of {SEARCH_MODES}, got {self.mode!r}")
        for key in ("lr", "weight_decay"):
            axis = getattr(self, key)
            if not isinstance(axis, dict) or set(axis) != {"center", "factors"} or not axis["factors"] or \
                    float(axis["center"]) <= 0 or any(float(f) <= 0 for f in axis["factors"]):
                raise ValueError(f"{where}.{key} must be dict(center=C > 0, factors=[f > 0, ...]), got {axis!r}")
        if self.max_rounds < 0 or self.seeds < 1:
            raise ValueError(f"{where}: max_rounds must be >= 0 and seeds >= 1, got {self.max_rounds}, {self.seeds}")
        if self.mode == "full" and not self.drop_path:
            raise ValueError(f"{where}: mode 'full' needs drop_path candidates")
        if self.select_on not in ("held_out", "val"):
            raise ValueError(f"{where}.select_on must be 'held_out' or 'val', got {self.select_on!r}")
        if self.mode != "none" and self.select_on == "held_out" and not (self.train_split and self.select_split):
            raise ValueError(f"{where}: select_on='held_out' needs train_split and select_split (dataset names; the "
                             "demo's are demo_train_search / demo_select, COCO's coco_2017_train_search / "
                             "coco_2017_select)")
        if self.reuse is not None and (not isinstance(self.reuse, dict) or set(self.reuse) - {"summary", "values"}
                                       or len(self.reuse) != 1):
            raise ValueError(f"{where}.reuse must be dict(summary=PATH) or dict(values={{init: {{lr, weight_decay}}}})")

    def axis_values(self, key: str) -> list[float]:
        axis = getattr(self, key)
        return sorted({_round(float(axis["center"]) * float(f)) for f in axis["factors"]})

    def step(self, key: str) -> float:
        """The ratio between neighbouring grid values (2 for the paper's x1/2, x1, x2): a ring's step."""
        values = self.axis_values(key)
        return values[1] / values[0] if len(values) > 1 else 1.0

    def describe(self) -> str:
        if self.mode == "none":
            return "none: each initialization keeps its recipe's lr, weight decay and drop path"
        lr, wd = self.axis_values("lr"), self.axis_values("weight_decay")
        parts = [f"lr in {{{', '.join(f'{v:.3g}' for v in lr)}}} x weight decay in "
                 f"{{{', '.join(f'{v:.3g}' for v in wd)}}}"
                 f" at drop path {self.grid_drop_path:g}, {self.grid_schedule.describe()}"
                 + (f" (random init: {self.grid_schedule_random.describe()})" if self.grid_schedule_random else "")]
        if self.reuse:
            parts = [f"lr and weight decay reused from {self.reuse.get('summary') or 'the stated values'}"]
        elif self.expand and self.max_rounds:
            parts.append(f"expanded by a ring when the best point is on the border (at most {self.max_rounds})")
        if self.mode == "full":
            parts.append(f"then drop path in {{{', '.join(f'{v:g}' for v in self.drop_path)}}}, "
                         f"{self.drop_path_schedule.describe()}"
                         + (f" (random init: {self.drop_path_schedule_random.describe()})"
                            if self.drop_path_schedule_random else ""))
        split = (f"selected on {self.metric} of {self.select_split} (held out from the training images; trained on "
                 f"{self.train_split})" if self.select_on == "held_out" else
                 f"selected on {self.metric} of the reported validation split (the paper's practice; "
                 "it flatters every row)")
        seeds = f", {self.seeds} seeds per point" if self.seeds > 1 else ""
        return (f"{self.protocol}: " if self.protocol else "") + "; ".join(parts) + f"; {split}{seeds}"


def _round(v: float) -> float:
    """Grid values to 6 significant digits, so 8e-4 x 2 and 1.6e-3 name one point."""
    return float(f"{v:.6g}")


@dataclass(frozen=True)
class SearchPoint:
    """One search run: a stage ("grid" or "drop_path"), its values, length and seed."""

    stage: str
    lr: float
    weight_decay: float
    drop_path: float
    iters: int
    seed: int = 0

    @property
    def name(self) -> str:
        """The run directory's name under ``search/<init>/``."""
        base = f"{self.stage}_lr{self.lr:.3g}_wd{self.weight_decay:.3g}_dp{self.drop_path:g}_it{self.iters}"
        return base + (f"_seed{self.seed}" if self.seed else "")

    def overrides(self, spec: SearchSpec, drop_path_key: str) -> list[str]:
        """What a point changes in the init's detection run (after the benchmark's overrides)."""
        opts = [f"optimizer.lr={self.lr!r}", f"optimizer.weight_decay={self.weight_decay!r}",
                f"{drop_path_key}={self.drop_path!r}", f"train.max_iter={self.iters}",
                "train.eval_period=0", "train.checkpointer.max_to_keep=1"]
        if self.seed:
            opts.append(f"train.seed={self.seed}")
        if spec.select_on == "held_out":
            opts += [f"dataloader.train.dataset.names={spec.train_split}",
                     f"dataloader.test.dataset.names={spec.select_split}"]
        return opts


@dataclass
class SearchPlan:
    """Where an init's search stands: ``pending`` points to run, or the ``chosen`` values.

    Attributes:
        pending: points not yet finished (the next round).
        chosen: ``{"lr", "weight_decay", "drop_path"}`` once the protocol is complete, else ``None``.
        points: every point of the protocol so far with its metric (``None``: not run or failed).
        failed: names of points that ran and failed (left out of the selection).
        expanded: rings added to the grid.
        grid_choice: the grid stage's ``(lr, weight_decay)`` once decided.
    """

    pending: list[SearchPoint]
    chosen: dict | None
    points: list[tuple[SearchPoint, float | None]]
    failed: list[str] = field(default_factory=list)
    expanded: int = 0
    grid_choice: tuple[float, float] | None = None


def _best(points: list[SearchPoint], metrics: dict[str, float | None], seeds: int) -> tuple[tuple, float] | None:
    """The best (lr, wd, dp) by the mean metric over a point's finished seeds (ties: smaller lr, wd)."""
    by_values: dict[tuple, list[float]] = {}
    for p in points:
        m = metrics.get(p.name)
        if m is not None and not math.isnan(m):
            by_values.setdefault((p.lr, p.weight_decay, p.drop_path), []).append(m)
    if not by_values:
        return None
    key = max(by_values, key=lambda k: (sum(by_values[k]) / len(by_values[k]), -k[0], -k[1], -k[2]))
    return key, sum(by_values[key]) / len(by_values[key])


def plan_search(spec: SearchSpec, final_iters: int, is_random: bool, metrics: dict[str, float | None],
                finished: set[str], reused: tuple[float, float] | None = None) -> SearchPlan:
    """The protocol replayed over what has finished.

    Args:
        spec: the search settings (mode not "none").
        final_iters: the init's final schedule (stage lengths are fractions of it).
        is_random: random init (its own stage lengths).
        metrics: point name -> its selection metric (``None`` when it failed or has none).
        finished: names of points whose runs are over (complete or failed); others are pending.
        reused: ``(lr, weight_decay)`` taken from elsewhere (``spec.reuse``): no grid stage.
    """
    seeds = range(spec.seeds)
    done = lambda p: p.name in finished  # noqa: E731
    all_points: list[SearchPoint] = []
    failed: list[str] = []

    def stage(points: list[SearchPoint]) -> list[SearchPoint]:
        all_points.extend(points)
        failed.extend(p.name for p in points if done(p) and metrics.get(p.name) is None)
        return [p for p in points if not done(p)]

    def result(pending, chosen=None, expanded=0, grid_choice=None) -> SearchPlan:
        return SearchPlan(pending, chosen, [(p, metrics.get(p.name)) for p in all_points], failed, expanded,
                          grid_choice)

    expanded = 0
    if reused is not None:
        lr, wd = reused
    else:
        sched = spec.grid_schedule_random if is_random and spec.grid_schedule_random else spec.grid_schedule
        iters = sched.iters_for(final_iters)
        lrs, wds = spec.axis_values("lr"), spec.axis_values("weight_decay")
        while True:
            grid = [SearchPoint("grid", lr, wd, spec.grid_drop_path, iters, s)
                    for lr in lrs for wd in wds for s in seeds]
            pending = stage([p for p in grid if p not in all_points])
            if pending:
                return result(pending, expanded=expanded)
            best = _best(grid, metrics, spec.seeds)
            if best is None:
                raise RuntimeError("every point of the grid failed: nothing to select (see the points' logs)")
            (lr, wd, _), _ = best
            if not (spec.expand and expanded < spec.max_rounds):
                break
            grew = False
            for key, values, v in (("lr", lrs, lr), ("weight_decay", wds, wd)):
                if len(values) > 1 and v in (values[0], values[-1]):
                    step = spec.step(key)
                    values.append(_round(v * step if v == values[-1] else v / step))
                    values.sort()
                    grew = True
            if not grew:
                break
            expanded += 1
    if spec.mode != "full":
        return result([], {"lr": lr, "weight_decay": wd, "drop_path": spec.grid_drop_path}, expanded, (lr, wd))
    sched = spec.drop_path_schedule_random if is_random and spec.drop_path_schedule_random else spec.drop_path_schedule
    iters = sched.iters_for(final_iters)
    dps = [SearchPoint("drop_path", lr, wd, float(dp), iters, s) for dp in spec.drop_path for s in seeds]
    pending = stage(dps)
    if pending:
        return result(pending, expanded=expanded, grid_choice=(lr, wd))
    best = _best(dps, metrics, spec.seeds)
    if best is None:
        raise RuntimeError("every point of the drop-path stage failed: nothing to select (see the points' logs)")
    (_, _, dp), _ = best
    return result([], {"lr": lr, "weight_decay": wd, "drop_path": dp}, expanded, (lr, wd))


def reused_values(spec: SearchSpec, init: str) -> tuple[float, float] | None:
    """``(lr, weight_decay)`` for ``init`` from ``spec.reuse`` (``None`` without reuse).

    Raises:
        ValueError: the summary or the values do not hold ``init`` (naming the file and what it holds).
    """
    if not spec.reuse:
        return None
    if "values" in spec.reuse:
        values = spec.reuse["values"].get(init)
        if not values:
            raise ValueError(f"search.reuse.values has no entry for {init} (it has {sorted(spec.reuse['values'])})")
        return float(values["lr"]), float(values["weight_decay"])
    path = spec.reuse["summary"]
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"search.reuse.summary: cannot read {path} ({e}); run the benchmark it comes from first "
                         "(e.g. configs/benchmark/coco_vit_b.py), or state the values with "
                         "reuse=dict(values=...)") from e
    chosen = {i["name"]: (i.get("search") or {}).get("chosen") for i in summary.get("inits", [])}
    if not chosen.get(init):
        raise ValueError(f"{path} has no chosen lr / weight decay for {init} (it has: "
                         f"{sorted(k for k, v in chosen.items() if v)}); finish that benchmark's search first")
    return float(chosen[init]["lr"]), float(chosen[init]["weight_decay"])


def plan_to_dict(plan: SearchPlan, spec: SearchSpec, run_dirs: dict[str, str], costs: dict[str, float | None],
                 metrics_extra: dict[str, dict]) -> dict:
    """The ``summary.json`` entry of one init's search."""
    return {
        "protocol": spec.describe(),
        "split": spec.select_split if spec.select_on == "held_out" else "val (the reported split)",
        "metric": spec.metric,
        "points": [{**{k: v for k, v in asdict(p).items()}, "name": p.name, "box_ap": m,
                    "mask_ap": (metrics_extra.get(p.name) or {}).get("segm/AP"), "run_dir": run_dirs.get(p.name),
                    "train_time_s": costs.get(p.name), "failed": p.name in plan.failed} for p, m in plan.points],
        "chosen": plan.chosen,
        "expanded": plan.expanded,
        "failed": plan.failed,
        "cost_s": sum(c for c in costs.values() if c) or None,
    }


def find_drop_path_key(model_cfg, prefix: str = "model") -> str | None:
    """The dotted key of the first ``drop_path_rate`` in a model config (the backbone's), or ``None``."""
    from omegaconf import DictConfig

    if isinstance(model_cfg, DictConfig):
        if "drop_path_rate" in model_cfg:
            return f"{prefix}.drop_path_rate"
        for key in model_cfg:
            found = find_drop_path_key(model_cfg[key], f"{prefix}.{key}")
            if found:
                return found
    return None


def search_dir(output_dir: str, init: str) -> str:
    """``OUTPUT/search/<init>``: every point's run directory lives under it."""
    return os.path.join(output_dir, "search", init)
