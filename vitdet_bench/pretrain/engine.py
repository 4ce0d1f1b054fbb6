"""``tools/pretrain_net.py`` and ``tools/train_tokenizer.py``: the detection engine, plus two hooks.

Pre-training runs through :func:`vitdet_bench.engine.do_train` unchanged (same flags, outputs,
DDP, AMP, checkpoints and exact resume). It adds:

* :class:`SetProgress`: tells the model how far training is (MoCo v3's momentum schedule);
* :class:`ExportHook`: with every checkpoint (and at the end) writes the product of the run,
  ``backbone_{iter}.pth`` / ``backbone_final.pth`` in the project's backbone format (keys as the
  detection ViT names them, plus metadata), or ``tokenizer_final.pth`` for a tokenizer;
* :class:`InitSource`: where the weights started (``train.init_checkpoint``, loaded whole by
  :func:`vitdet_bench.checkpoint.load_method_checkpoint`), kept in ``init_source.json`` so a resumed
  run's exports still carry the lineage ("started from X, then N iterations on Y").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Callable

import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from ..checkpoint import INIT_SOURCE_FILE, atomic_write_text, lineage_text, save_backbone_export
from ..config import instantiate
from ..engine.defaults import (
    check_run_keys,
    default_argument_parser,
    do_train,
    fill_num_classes,
    load_config,
    run_in_output_dir,
)
from ..engine.launch import launch
from ..engine.submit import SubmitError, launcher_requested, submit_tool
from ..engine.train_loop import HookBase
from ..utils import comm
from ..utils.comm import unwrap_model
from ..utils.logger import setup_logger
from .tokenizers import save_tokenizer

__all__ = ["SetProgress", "ExportHook", "InitSource", "export_meta", "pretrain_main", "run_pretrain",
           "run_train_tokenizer"]

logger = logging.getLogger("vitdet_bench")


class SetProgress(HookBase):
    """Before each step: ``model.set_progress(iter, max_iter)`` (a no-op for models without it)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = unwrap_model(model)

    def before_step(self) -> None:
        if hasattr(self.model, "set_progress"):
            self.model.set_progress(self.trainer.iter, self.trainer.max_iter)


class ExportHook(HookBase):
    """Write ``{prefix}_{iter:07d}.pth`` with each periodic checkpoint and ``{prefix}_final.pth`` at the end.

    Args:
        export: ``export(path, iteration)`` writes one file.
        output_dir: the run's output directory.
        prefix: file name prefix ("backbone", "tokenizer").
        period: the checkpoint period (0: only the final file).
        max_to_keep: keep this many periodic exports (``None``: all).
    """

    def __init__(self, export: Callable[[str, int], None], output_dir: str, prefix: str, period: int,
                 max_to_keep: int | None = None) -> None:
        self.export = export
        self.output_dir = output_dir
        self.prefix = prefix
        self.period = period
        self.max_to_keep = max_to_keep
        self._written: list[str] = []

    def after_step(self) -> None:
        it, max_iter = self.trainer.iter, self.trainer.max_iter
        if self.period > 0 and (it + 1) % self.period == 0 and it + 1 < max_iter:
            path = os.path.join(self.output_dir, f"{self.prefix}_{it:07d}.pth")
            self.export(path, it + 1)
            self._written.append(path)
            while self.max_to_keep and len(self._written) > self.max_to_keep:
                old = self._written.pop(0)
                if os.path.exists(old):
                    os.remove(old)
        if it + 1 >= max_iter:
            path = os.path.join(self.output_dir, f"{self.prefix}_final.pth")
            self.export(path, it + 1)
            logger.info("Exported %s", path)

    def after_train(self) -> None:
        # A finished run resumed without its final export (the export failed after model_final.pth).
        path = os.path.join(self.output_dir, f"{self.prefix}_final.pth")
        if self.trainer.start_iter >= self.trainer.max_iter and not os.path.isfile(path):
            self.export(path, self.trainer.max_iter)
            logger.info("Exported %s (it was missing)", path)


class InitSource(HookBase):
    """Keeps where the run's weights started in ``OUTPUT/init_source.json``.

    Before training: when the run loaded ``train.init_checkpoint`` (the model's ``init_source`` is
    set), the record is written; when it resumed (it loads no init file), the record is read back;
    a new run from scratch removes a stale one. ``source`` is what the exports carry.

    Args:
        model: the pre-training model (DDP-wrapped or not).
        output_dir: the run's output directory.
    """

    def __init__(self, model: nn.Module, output_dir: str) -> None:
        self.model = unwrap_model(model)
        self.path = os.path.join(output_dir, INIT_SOURCE_FILE)
        self.source: dict | None = None

    def before_train(self) -> None:
        loaded = getattr(self.model, "init_source", None)
        if loaded:
            self.source = loaded
            atomic_write_text(self.path, json.dumps(loaded, indent=1))
        elif self.trainer.start_iter > 0 and os.path.isfile(self.path):
            with open(self.path, encoding="utf-8") as f:
                self.source = json.load(f)
        elif os.path.isfile(self.path):
            os.remove(self.path)


def export_meta(cfg: DictConfig, model: nn.Module, iterations: int, dataset_size: int | None,
                init_source: dict | None = None) -> dict:
    """Metadata stored with an exported backbone: method, architecture, input, schedule, data, and
    (continued pre-training) ``init``, where the weights started, with the ``lineage`` line."""
    model = unwrap_model(model)
    meta = dict(model.export_meta()) if hasattr(model, "export_meta") else {}
    loader = cfg.dataloader.train
    batch = int(loader.total_batch_size) * int(cfg.train.get("grad_accum_steps", 1))
    dataset = OmegaConf.to_container(loader.dataset, resolve=True) if isinstance(loader.dataset, DictConfig) else {}
    target = dataset.get("_target_")
    name = getattr(target, "__name__", str(target).rsplit(".", 1)[-1]) if target else None
    meta.update(
        iterations=int(iterations),
        max_iter=int(cfg.train.max_iter),
        batch_size=batch,
        epochs=round(iterations * batch / dataset_size, 3) if dataset_size else None,
        data={k: v for k, v in dataset.items() if k != "_target_"} | {"num_images": dataset_size}
        | ({"dataset": name} if name else {}),
        seed=int(cfg.train.seed),
    )
    if init_source:
        meta["init"] = init_source
    meta["lineage"] = lineage_text(meta)
    return meta


def _fill_num_classes(cfg: DictConfig) -> None:
    """``model.num_classes=None`` (supervised): take it from the training data's classes."""
    if "num_classes" in cfg.model and cfg.model.num_classes is None:
        _, meta = instantiate(cfg.dataloader.train.dataset)
        fill_num_classes(cfg, meta.num_classes, meta.name)


def pretrain_main(args: argparse.Namespace, product: str = "backbone",
                  extra_hooks: Callable[[nn.Module, object], list] | None = None) -> dict:
    """Load the config, train with the engine, export ``product`` ("backbone" or "tokenizer").

    ``extra_hooks(model, trainer)`` adds hooks (the benchmark runner's progress bar)."""
    if getattr(args, "eval_only", False):
        raise SystemExit("--eval-only has no meaning for pre-training; evaluate the exported backbone by fine-tuning "
                         "it")
    cfg = load_config(args.config_file, args.opts)
    check_run_keys(cfg)
    output_dir = cfg.train.output_dir
    period = int(cfg.train.checkpointer.period)
    keep = cfg.train.checkpointer.get("max_to_keep")

    def hooks(model: nn.Module, trainer) -> list:
        more = extra_hooks(model, trainer) if extra_hooks else []
        if not comm.is_main_process():
            return [SetProgress(model), *more]
        dataset_size = len(getattr(trainer.data_loader, "dataset", []) or []) or None
        init = InitSource(model, output_dir)
        if product == "tokenizer":
            def export(path: str, iteration: int) -> None:
                save_tokenizer(unwrap_model(model), path, {"iterations": iteration, "config_file": args.config_file})
        else:
            def export(path: str, iteration: int) -> None:
                meta = export_meta(cfg, model, iteration, dataset_size, init.source)
                meta["config_file"] = args.config_file
                save_backbone_export(unwrap_model(model).export_state(), path, meta)
        return [SetProgress(model), init, ExportHook(export, output_dir, product, period, keep), *more]

    with run_in_output_dir(cfg, args, "Tokenizer training" if product == "tokenizer" else "Pre-training") as mode:
        final = os.path.join(output_dir, f"{product}_final.pth")
        if mode == "finished" and os.path.isfile(final):
            logger.info("%s holds a finished run with its %s: nothing to train (give a larger train.max_iter to "
                        "train on)", output_dir, final)
            return {}
        _fill_num_classes(cfg)  # reads the data: after the directory and init checkpoint passed their checks
        return do_train(args, cfg, extra_hooks=hooks)


def _run(product: str, description: str, argv: list[str] | None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = default_argument_parser(description).parse_args(argv)
    if launcher_requested(args):  # --launcher slurm ...: submit this command as a job
        setup_logger()
        try:
            submit_tool("tokenizer" if product == "tokenizer" else "pretrain", argv, args)
        except SubmitError as e:  # no Slurm here: the message, not a traceback
            sys.exit(f"error: {e}")
        return
    launch(pretrain_main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args, product))


def run_pretrain(argv: list[str] | None = None) -> None:
    """Entry point of ``tools/pretrain_net.py``."""
    _run("backbone", "Pre-train a backbone (MAE, MoCo v3, BEiT, supervised, feature-reconstruction MIM, MAE-Lite, "
         "ConvMAE, FastConvMAE) from a LazyConfig and export it", argv)


def run_train_tokenizer(argv: list[str] | None = None) -> None:
    """Entry point of ``tools/train_tokenizer.py``."""
    _run("tokenizer", "Train the project's VQ tokenizer for BEiT from a LazyConfig", argv)
