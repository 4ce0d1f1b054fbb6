"""What ``tools/lazyconfig_train_net.py`` does: parse Detectron2's flags, set up the output
directory, build model / optimizer / loader from the LazyConfig, train with hooks, evaluate."""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import random
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from ..checkpoint import DETECTOR_FORMATS, Checkpointer, CheckpointError, detect_init_format, read_checkpoint
from ..config import LazyConfig, instantiate, validate_config
from ..data.catalog import get_metadata
from ..evaluation import evaluate_coco_results, format_results_table, inference_on_dataset
from ..solver import LRMultiplier
from ..utils import comm
from ..utils.cli import CommandLineParser
from ..utils.events import CommonMetricPrinter, JSONWriter, TensorboardWriter
from ..utils.lock import DirectoryLock, LockError
from ..utils.logger import close_log_files, log_fatal_errors, setup_logger, sigterm_as_exception
from . import hooks
from .launch import launch
from .run_dir import (
    RunDirError,
    check_output_dir,
    clear_run,
    final_evaluation,
    last_checkpoint_iteration,
    record_final_evaluation,
    remove_stale_tmp_files,
    resume_notes,
    truncate_events,
    truncate_metrics,
)
from .speed import compile_module, inference_amp_dtype
from .submit import SubmitError, add_launcher_arguments, launcher_requested, submit_tool
from .train_loop import AMP_DTYPES, SimpleTrainer

__all__ = [
    "RUN_LOCK",
    "default_argument_parser",
    "default_setup",
    "check_init_checkpoint",
    "check_run_keys",
    "finish_run",
    "load_config",
    "lock_output_dir",
    "prepare_output_dir",
    "run_in_output_dir",
    "save_run_config",
    "resolve_device",
    "fill_num_classes",
    "resolve_num_classes",
    "scale_lr_to_batch",
    "build_model",
    "create_ddp_model",
    "init_load_options",
    "do_test",
    "do_train",
    "main",
    "run",
]

logger = logging.getLogger("vitdet_bench")

RUN_LOCK = "run.lock"  # held in train.output_dir while a run writes there (utils/lock.py)


def default_argument_parser(description: str | None = None) -> CommandLineParser:
    """Detectron2's training flags (config file, resume, eval-only, processes and machines) plus
    ``--overwrite``; flags and ``key=value`` overrides may come in any order (``args.opts``)."""
    parser = CommandLineParser(description=description)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="a .py LazyConfig or a saved config.yaml")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in train.output_dir from its last_checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="train.output_dir holds a run: delete its files and start again (without this "
                             "flag or --resume, a directory holding a run is refused)")
    parser.add_argument("--eval-only", action="store_true", help="evaluate train.init_checkpoint and exit")
    parser.add_argument("--num-gpus", type=int, default=1,
                        help="processes per machine (Gloo workers on a CPU-only machine)")
    parser.add_argument("--num-machines", type=int, default=1)
    parser.add_argument("--machine-rank", type=int, default=0, help="this machine's rank")
    parser.add_argument("--dist-url", default="auto", help="tcp://HOST:PORT of machine 0, or 'auto' on one machine")
    add_launcher_arguments(parser)  # --launcher slurm ...: submit this command as a job (engine/submit.py)
    return parser


def load_config(config_file: str, opts: list[str]) -> DictConfig:
    """Load a config, apply the overrides and check every target and argument (nothing is built or
    written; errors name the key)."""
    cfg = LazyConfig.load(config_file)
    cfg = LazyConfig.apply_overrides(cfg, opts)
    validate_config(cfg)
    return cfg


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(cfg: DictConfig) -> torch.device:
    """``train.device``: "auto" (CUDA when available), "cpu" or "cuda"; a CUDA run uses its local rank."""
    name = cfg.train.get("device", "auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"train.device={name} but CUDA is not available; set train.device=cpu")
        return torch.device("cuda", comm.get_local_rank())
    if name != "cpu":
        raise ValueError(f"train.device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    return torch.device("cpu")


def check_run_keys(cfg: DictConfig) -> None:
    """Refuse values of ``train.output_dir`` and ``dataloader.train.total_batch_size`` that would
    fail later with a message naming neither (before anything is built or written).

    Args:
        cfg: the loaded config (overrides applied).

    Raises:
        ValueError: naming the key, the value and what to give.
    """
    if not str(cfg.train.get("output_dir") or "").strip():
        raise ValueError("train.output_dir is empty: set train.output_dir=DIR, the folder for the run's "
                         "config.yaml, log.txt, metrics.json and checkpoints")
    loader = cfg.dataloader.get("train") if "dataloader" in cfg else None
    if loader is not None and "total_batch_size" in loader:
        batch = loader.total_batch_size
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ValueError(f"dataloader.train.total_batch_size={batch!r}: it must be a whole number of images "
                             "per iteration, at least 1 (and divisible by the number of processes)")


def check_init_checkpoint(cfg: DictConfig, mode: str) -> None:
    """Refuse a ``train.init_checkpoint`` that is missing or a folder before any data is read
    (a pre-training pool is drawn first otherwise); not checked when a resume ignores it.

    Args:
        cfg: the loaded config.
        mode: the output directory's mode (:func:`prepare_output_dir`).

    Raises:
        CheckpointError: naming the key, the path and what to give instead.
    """
    path = str(cfg.train.get("init_checkpoint") or "")
    if not path:
        return
    if mode in ("resume", "finished") and os.path.exists(os.path.join(cfg.train.output_dir, "last_checkpoint")):
        return  # the run continues from its own checkpoint
    if os.path.isdir(path):
        inside = sorted(f for f in os.listdir(path) if f.endswith((".pth", ".pkl", ".pt")))
        example = ", ".join(os.path.join(path, f) for f in inside[:3]) or \
            f"{os.path.join(path, 'model_final.pth')} or {os.path.join(path, 'backbone_final.pth')}"
        raise CheckpointError(f"train.init_checkpoint={path} is a folder, not a checkpoint file: give a file in "
                              f"it, e.g. {example} (a run's detector: model_final.pth; a pre-training run's "
                              "export: backbone_final.pth)")
    if not os.path.isfile(path):
        raise CheckpointError(f"train.init_checkpoint={path} does not exist: give the path of a checkpoint "
                              "file (or train.init_checkpoint=\"\" to start from random weights)")


def lock_output_dir(output_dir: str, what: str) -> DirectoryLock | None:
    """Take ``output_dir/run.lock`` on the main process (see :mod:`vitdet_bench.utils.lock`), with
    one outcome for all ranks: every rank raises the main process's :class:`LockError`.

    Args:
        output_dir: the run's ``train.output_dir``.
        what: what runs there, for the message of a refused run ("training run", ...).

    Returns:
        the held lock on the main process (release it when the run ends), ``None`` on the others.
    """
    lock, error = None, ""
    if comm.is_main_process():
        lock = DirectoryLock(output_dir, RUN_LOCK, what, hint="or set train.output_dir= to another directory")
        try:
            lock.acquire()
        except LockError as e:
            lock, error = None, str(e)
    error = comm.all_gather(error)[0]
    if error:
        if lock is not None:
            lock.release()
        raise LockError(error)
    return lock


def prepare_output_dir(cfg: DictConfig, args: argparse.Namespace) -> str:
    """Check ``train.output_dir`` and ``train.init_checkpoint`` before anything is written there
    (see :mod:`.run_dir`), with one decision for all ranks; with ``--overwrite``, delete the old
    run's files.

    Returns:
        the mode: ``"new"``, ``"resume"``, ``"finished"`` (a resume of a run that has trained all
        its iterations), ``"overwrite"`` or ``"beside"`` (an evaluation in a training run's
        directory, which writes ``config_eval.yaml`` and ``inference_eval/``).
    """
    resume, overwrite = bool(getattr(args, "resume", False)), bool(getattr(args, "overwrite", False))
    eval_only = bool(getattr(args, "eval_only", False))
    decision: tuple[str, str, str] = ("", "", "")
    if comm.is_main_process():
        try:
            mode = check_output_dir(cfg, resume, overwrite, eval_only)
            if not eval_only:  # --eval-only checks its checkpoint itself (check_evaluable)
                check_init_checkpoint(cfg, mode)
            decision = (mode, "", "")
        except (RunDirError, CheckpointError) as e:
            decision = ("", type(e).__name__, str(e))
    mode, kind, error = comm.all_gather(decision)[0]
    if error:
        raise (CheckpointError if kind == "CheckpointError" else RunDirError)(error)
    if mode == "overwrite":
        if comm.is_main_process():
            removed = clear_run(cfg.train.output_dir)
            logger.warning("--overwrite: deleted %s from %s", ", ".join(removed) or "nothing", cfg.train.output_dir)
        comm.synchronize()  # before any rank opens its log file there
    if mode == "beside":
        evaluator = cfg.dataloader.get("evaluator")
        inference = os.path.join(cfg.train.output_dir, "inference")
        current = os.path.abspath(str(evaluator.get("output_dir", ""))) if evaluator is not None else None
        if current == os.path.abspath(inference):
            evaluator.output_dir = os.path.join(cfg.train.output_dir, "inference_eval")
    return mode


def default_setup(cfg: DictConfig, args: argparse.Namespace, notes: Sequence[str] = ()) -> None:
    """Create the output dir, log to ``log.txt`` and seed every RNG. ``config.yaml`` is written
    later, by :func:`save_run_config`, once the run's checkpoint has loaded (on ``--resume``, once
    its first step succeeded). ``notes`` are warnings found before ``log.txt`` was open (a stale
    lock taken over), logged into it; a resume's changed config keys are logged too."""
    output_dir = cfg.train.output_dir
    rank = comm.get_rank()
    if comm.is_main_process():
        os.makedirs(output_dir, exist_ok=True)
    setup_logger(output_dir, rank)
    logger.info("Rank %d of %d; torch %s, torchvision %s, CUDA available: %s", rank, comm.get_world_size(),
                torch.__version__, __import__("torchvision").__version__, torch.cuda.is_available())
    logger.info("Command line: %s", " ".join(sys.argv))
    if comm.is_dist():
        logger.info("Process group: %s backend", torch.distributed.get_backend())
    if getattr(args, "overwrite", False):
        logger.warning("--overwrite: the files of any earlier run in %s were deleted first", output_dir)
    for note in notes:
        logger.warning("%s", note)
    if getattr(args, "resume", False) and comm.is_main_process():
        for note in resume_notes(cfg):
            logger.warning("%s", note)
    seed_all(int(cfg.train.seed) + rank)


@contextmanager
def run_in_output_dir(cfg: DictConfig, args: argparse.Namespace, what: str) -> Iterator[str]:
    """Everything around a run in ``train.output_dir``: hold its lock, check it (and the init
    checkpoint), set up ``log.txt``, turn SIGTERM into an exception, and write whatever ends the
    run into ``log.txt``; release the lock and close the log at the end, however it ends.

    Args:
        cfg: the checked config.
        args: the tool's flags (``--resume``, ``--overwrite``, ``--eval-only``).
        what: what runs, for messages: "Training", "Evaluation", "Pre-training", ...

    Yields:
        the mode of :func:`prepare_output_dir`.
    """
    lock = lock_output_dir(cfg.train.output_dir, f"{what.lower()} run")
    try:
        mode = prepare_output_dir(cfg, args)
        default_setup(cfg, args, notes=[f"Took over the {lock.took_over}"] if lock and lock.took_over else [])
        try:
            with sigterm_as_exception(), log_fatal_errors(logger, what):
                yield mode
        finally:
            close_log_files(cfg.train.output_dir)
    finally:
        if lock is not None:
            lock.release()


def save_run_config(cfg: DictConfig, name: str = "config.yaml") -> None:
    """Write the full config into the output directory (main process)."""
    if comm.is_main_process():
        path = os.path.join(cfg.train.output_dir, name)
        LazyConfig.save(cfg, path)
        logger.info("Full config saved to %s", path)


def resolve_num_classes(cfg: DictConfig) -> None:
    """Fill ``model.num_classes`` from the training dataset's categories when it is ``None``;
    refuse a value that disagrees with the dataset."""
    if "num_classes" not in cfg.model:
        return
    dataset_cfg = cfg.dataloader.train.dataset
    name = dataset_cfg.names
    if dataset_cfg.get("json_file"):
        from ..data.catalog import register_coco_instances

        register_coco_instances(name, dataset_cfg.json_file, dataset_cfg.image_root)
    metadata = get_metadata(name)
    fill_num_classes(cfg, metadata.num_classes, f"dataset '{name}' ({metadata.json_file})")


def fill_num_classes(cfg: DictConfig, num_classes: int, source: str) -> None:
    """``model.num_classes=None`` takes ``num_classes`` of the training data ``source`` (detection:
    its categories; supervised pre-training: its image classes); a set value must agree with it."""
    if cfg.model.num_classes is None:
        cfg.model.num_classes = num_classes
        logger.info("model.num_classes = %d, from %s", num_classes, source)
    elif cfg.model.num_classes != num_classes:
        raise ValueError(f"model.num_classes={cfg.model.num_classes} but {source} has {num_classes} classes; "
                         "set model.num_classes=None to take it from the data")


class _BatchNorm(nn.modules.batchnorm._BatchNorm):
    """Plain BatchNorm for any input rank, as SyncBatchNorm accepts: (N, C) in MoCo v3's MLPs,
    (N, C, H, W) in the detector's heads."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")


def _revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """SyncBatchNorm -> BatchNorm with the same state (for CPU or single-process runs)."""
    out = module
    if isinstance(module, nn.SyncBatchNorm):
        out = _BatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        out.load_state_dict(module.state_dict())
    for name, child in module.named_children():
        out.add_module(name, _revert_sync_batchnorm(child))
    return out


def build_model(cfg: DictConfig, device: torch.device | None = None) -> nn.Module:
    """Instantiate ``cfg.model`` on ``device`` (default: ``train.device``); SyncBN becomes BatchNorm
    off CUDA or in a single process; ``train.compile`` compiles a submodule in place (speed.py)."""
    device = device or resolve_device(cfg)
    model = instantiate(cfg.model)
    has_sync = any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    if has_sync and (device.type != "cuda" or comm.get_world_size() == 1):
        # torch's SyncBatchNorm needs CUDA and a process group; alone it is plain BN anyway.
        logger.info("SyncBN -> BatchNorm2d (device %s, %d process(es))", device, comm.get_world_size())
        model = _revert_sync_batchnorm(model)
    model.to(device)
    logger.info("Model: %s parameters (%.2fM)", sum(p.numel() for p in model.parameters()),
                sum(p.numel() for p in model.parameters()) / 1e6)
    compile_module(model, cfg.train.get("compile"))
    return model


def create_ddp_model(model: nn.Module, broadcast_buffers: bool = False, find_unused_parameters: bool = False,
                     fp16_compression: bool = False) -> nn.Module:
    """Wrap in DistributedDataParallel when more than one process runs."""
    if comm.get_world_size() == 1:
        return model
    device_ids = [comm.get_local_rank()] if next(model.parameters()).is_cuda else None
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=broadcast_buffers,
                                              find_unused_parameters=find_unused_parameters)
    if fp16_compression:
        from torch.distributed.algorithms.ddp_comm_hooks import default as comm_hooks

        ddp.register_comm_hook(state=None, hook=comm_hooks.fp16_compress_hook)
    return ddp


def scale_lr_to_batch(cfg: DictConfig) -> float:
    """Apply ``train.reference_batch_size``: scale ``optimizer.lr`` linearly when the effective batch
    (``dataloader.train.total_batch_size`` x ``train.grad_accum_steps``) differs from it.

    Returns:
        the factor applied (1.0 when unset or equal).
    """
    ref = cfg.train.get("reference_batch_size")
    if not ref:
        return 1.0
    if int(ref) <= 0:
        raise ValueError(f"train.reference_batch_size must be a positive batch size or None, got {ref}")
    batch = int(cfg.dataloader.train.total_batch_size) * int(cfg.train.get("grad_accum_steps", 1))
    factor = batch / int(ref)
    if factor != 1.0:
        logger.info("optimizer.lr %.3g is for batch %d; scaled linearly to batch %d: %.3g", cfg.optimizer.lr, int(ref),
                    batch, cfg.optimizer.lr * factor)
        cfg.optimizer.lr = float(cfg.optimizer.lr) * factor
    return factor


def check_evaluable(path: str, model: nn.Module) -> None:
    """``--eval-only`` evaluates a trained detector: refuse a file that holds no detector (a
    pre-trained backbone would load with the neck and heads at random values, reported as
    expected, and the run would print an AP of noise)."""
    if not path:
        raise ValueError("--eval-only needs train.init_checkpoint=FILE: a trained detector (a run's model_final.pth "
                         "or a Detectron2 checkpoint)")
    format = detect_init_format(read_checkpoint(path), model)
    if format not in DETECTOR_FORMATS:
        raise CheckpointError(
            f"--eval-only evaluates a trained detector, but {path} is a pre-trained backbone ('{format}' format): "
            "its neck and heads would be random. Fine-tune it first (tools/lazyconfig_train_net.py with "
            "train.init_checkpoint=FILE), then evaluate the run's model_final.pth."
        )


def init_load_options(cfg: DictConfig) -> dict:
    """How ``train.init_checkpoint`` is read: ``train.init_checkpoint_options`` (format,
    patch-embed and bias-table resizing) plus ``strict=train.init_strict`` (default True)."""
    options = cfg.train.get("init_checkpoint_options") or {}
    options = dict(OmegaConf.to_container(options, resolve=True)) if isinstance(options, DictConfig) else dict(options)
    if "strict" in options:  # configs saved before train.init_strict existed
        logger.warning("train.init_checkpoint_options.strict is ignored: train.init_strict (now %s) decides "
                       "whether a missing tensor stops the run", cfg.train.get("init_strict", True))
        options.pop("strict")
    options["strict"] = bool(cfg.train.get("init_strict", True))
    return options


CURVE_PREFIX = "curve/"  # metrics.json keys of the convergence curve's evaluation set (train.eval_subset)


def _subset_image_ids(cfg: DictConfig) -> set[int] | None:
    """The image ids of ``train.eval_subset`` (``None`` when unset), checked to be images of
    ``dataloader.test``'s dataset: the curve's points must be comparable with the final scores."""
    subset = cfg.train.get("eval_subset")
    if not subset:
        return None
    full = cfg.dataloader.test.dataset.names
    sub_meta, full_meta = get_metadata(subset), get_metadata(full)
    with open(sub_meta.json_file, encoding="utf-8") as f:
        sub_images = {im["id"]: im["file_name"] for im in json.load(f)["images"]}
    with open(full_meta.json_file, encoding="utf-8") as f:
        full_images = {im["id"]: im["file_name"] for im in json.load(f)["images"]}
    foreign = [i for i, name in sub_images.items() if full_images.get(i) != name]
    if foreign or not sub_images:
        raise ValueError(f"train.eval_subset={subset!r} ({sub_meta.json_file}) must be a non-empty subset of "
                         f"dataloader.test's dataset {full!r} ({full_meta.json_file}); {len(foreign)} of its "
                         f"{len(sub_images)} images are not among it")
    return set(sub_images)


def do_test(cfg: DictConfig, model: nn.Module, subset: str | None = None, with_curve: bool = False) -> dict:
    """Evaluate on ``dataloader.test`` with ``dataloader.evaluator``; log the AP table.

    Args:
        cfg: the config.
        model: the detector.
        subset: evaluate this dataset instead (``train.eval_subset``: the convergence curve's
            intermediate points); its metrics come back under ``curve/<task>`` and no results
            file is written.
        with_curve: (the final evaluation) also score ``train.eval_subset`` from the same
            detections, under ``curve/<task>``, so the curve's last point is on its images.
    """
    if "evaluator" not in cfg.dataloader:
        return {}
    model = comm.unwrap_model(model)
    amp_dtype = inference_amp_dtype(cfg, next(model.parameters()).device)
    loader_cfg, evaluator_cfg = cfg.dataloader.test, cfg.dataloader.evaluator
    if subset:
        loader_cfg, evaluator_cfg = copy.deepcopy(loader_cfg), copy.deepcopy(evaluator_cfg)
        loader_cfg.dataset.names = subset
        evaluator_cfg.dataset_name = subset
        evaluator_cfg.output_dir = None
    evaluator = instantiate(evaluator_cfg)
    results = inference_on_dataset(model, instantiate(loader_cfg), evaluator, amp_dtype=amp_dtype)
    if comm.is_main_process() and results:
        logger.info("Evaluation results on %s:\n%s", loader_cfg.dataset.names, format_results_table(results))
    if subset:
        return {CURVE_PREFIX + task: metrics for task, metrics in results.items()}
    ids = _subset_image_ids(cfg) if with_curve else None
    if ids is not None and comm.is_main_process() and results:
        meta = get_metadata(cfg.train.eval_subset)
        curve = evaluate_coco_results(meta.json_file, [p for p in evaluator.predictions if p["image_id"] in ids],
                                      tuple(results), meta.thing_classes)
        results.update({CURVE_PREFIX + task: metrics for task, metrics in curve.items()})
    return results


def do_train(args: argparse.Namespace, cfg: DictConfig,
             extra_hooks: Callable[[nn.Module, SimpleTrainer], list] | None = None) -> dict:
    """Train per ``cfg.train`` with Detectron2's hook set; returns the final evaluation results.

    ``extra_hooks(model, trainer)`` returns more hooks, registered before the writers so what they
    record is logged in the same iteration (pre-training adds its progress and export hooks).
    On resume, ``metrics.json`` and the event files are cut back to the checkpoint's iteration
    and stale temporary files are removed; ``config.yaml`` is written once the checkpoint loaded
    (on resume, once the first step succeeded).
    """
    config_to_save = copy.deepcopy(cfg)  # before the model is put into it
    device = resolve_device(cfg)
    model = build_model(cfg, device)
    scale_lr_to_batch(cfg)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)
    ddp_model = create_ddp_model(model, **cfg.train.ddp)

    amp = cfg.train.amp
    amp_dtype = None
    if amp.enabled:
        if amp.get("dtype", "float16") not in AMP_DTYPES:
            raise ValueError(f"train.amp.dtype must be one of {list(AMP_DTYPES)}, got {amp.dtype!r}")
        amp_dtype = AMP_DTYPES[amp.get("dtype", "float16")]
    clip = cfg.train.get("clip_grad", {})
    trainer = SimpleTrainer(ddp_model, train_loader, optimizer, amp_dtype=amp_dtype,
                            clip_grad_norm=clip.get("max_norm") if clip.get("enabled") else None, device=device,
                            grad_accum_steps=int(cfg.train.get("grad_accum_steps", 1)))
    max_iter = int(cfg.train.max_iter)
    output_dir = cfg.train.output_dir
    scheduler = LRMultiplier(optimizer, instantiate(cfg.lr_multiplier), max_iter)
    checkpointer = Checkpointer(model, output_dir, save_to_disk=comm.is_main_process(),
                                init_options=init_load_options(cfg),
                                optimizer=optimizer, scheduler=scheduler, trainer=trainer)
    extra = checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    start_iter = int(extra["iteration"]) + 1 if "iteration" in extra else 0
    if comm.is_main_process():
        _clean_for_start(output_dir, start_iter)
    if start_iter == 0:
        save_run_config(config_to_save)
    # A resume keeps the run's config.yaml until a step with the new config has succeeded: one
    # that fails at once (a bad image in a new dataset) leaves the run described as it was.
    save_config = hooks.AfterFirstStep(lambda: save_run_config(config_to_save)) if start_iter > 0 else None
    final_results: dict[str, Any] = {}

    subset = cfg.train.get("eval_subset")
    if subset and int(cfg.train.eval_period) >= 0:
        _subset_image_ids(cfg)  # a subset that is not the test set's fails now, not after training

    def evaluate() -> dict:
        final_results.clear()
        final_results.update(do_test(cfg, model, with_curve=bool(subset)))
        return final_results

    writers = []
    if comm.is_main_process():
        writers = [CommonMetricPrinter(max_iter), JSONWriter(os.path.join(output_dir, "metrics.json")),
                   TensorboardWriter(output_dir)]
    trainer.register_hooks([
        save_config,
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler),
        hooks.PeriodicCheckpointer(checkpointer, cfg.train.checkpointer.period, max_iter,
                                   cfg.train.checkpointer.get("max_to_keep")) if comm.is_main_process() else None,
        hooks.EvalHook(cfg.train.eval_period, (lambda: do_test(cfg, model, subset=subset)) if subset else evaluate,
                       final_function=evaluate),
        *(extra_hooks(model, trainer) if extra_hooks else []),
        hooks.PeriodicWriter(writers, period=cfg.train.log_period) if writers else None,
    ])
    if start_iter >= max_iter:
        logger.info("Nothing to train: the checkpoint has trained all %d iterations (train.max_iter=%d)", start_iter,
                    max_iter)
    try:
        trainer.train(start_iter, max_iter)
    except FloatingPointError as e:
        note = checkpointer.clean_checkpoint_note() if comm.is_main_process() else \
            f"Rank 0's log names the last clean checkpoint in {output_dir}."
        raise FloatingPointError(f"{e}\n{note} To train on, check the data, or lower optimizer.lr or enable "
                                 "train.clip_grad.enabled=True and start again with --overwrite (a resumed run "
                                 "keeps the lr schedule of its checkpoint).") from e
    return final_results


def _clean_for_start(output_dir: str, start_iter: int) -> None:
    """Remove what a killed attempt left after the checkpoint this run starts from."""
    for name in remove_stale_tmp_files(output_dir):
        logger.warning("Removed %s, left by an interrupted write", os.path.join(output_dir, name))
    dropped = truncate_metrics(os.path.join(output_dir, "metrics.json"), start_iter)
    dropped_events = truncate_events(output_dir, start_iter)
    if dropped or dropped_events:
        why = "the checkpoint this run starts from does not cover them" if start_iter else "no checkpoint covers them"
        logger.warning("Starting at iteration %d: dropped %d metrics.json rows and %d TensorBoard events that an "
                       "earlier attempt logged at or after it (%s)", start_iter, dropped, dropped_events, why)


def finish_run(cfg: DictConfig) -> dict:
    """``--resume`` of a run that has trained its ``train.max_iter`` iterations: nothing is trained.

    Its final evaluation is run only when ``metrics.json`` lacks it or the results file is missing
    (a run killed after ``model_final.pth`` was written, a file that lost its last row), and added
    to the last iteration's row; ``config.yaml`` is written only when missing. Nothing else changes.

    Args:
        cfg: the run's config (``train.output_dir`` holds the finished run).

    Returns:
        the final evaluation results (from ``metrics.json``, or the new evaluation).
    """
    output_dir, max_iter = cfg.train.output_dir, int(cfg.train.max_iter)
    found = last_checkpoint_iteration(output_dir)
    name = found[0] if found else "last_checkpoint"
    checkpoint = os.path.join(output_dir, name)
    logger.info("%s holds a finished run: %s has trained all %d iterations (train.max_iter=%d). Nothing to train "
                "(give a larger train.max_iter to train on).", output_dir, checkpoint, max_iter, max_iter)
    metrics = os.path.join(output_dir, "metrics.json")
    results = final_evaluation(metrics, max_iter)
    evaluator = cfg.dataloader.get("evaluator")
    evaluates = evaluator is not None and int(cfg.train.get("eval_period", 0)) >= 0
    results_file = os.path.join(str(evaluator.get("output_dir") or ""), "coco_instances_results.json") \
        if evaluator is not None else ""
    if not os.path.isfile(os.path.join(output_dir, "config.yaml")):
        save_run_config(cfg)
    if not evaluates or (results is not None and (not evaluator.get("output_dir") or os.path.isfile(results_file))):
        if results is not None:
            logger.info("Its final evaluation is in %s; to evaluate it again: --eval-only "
                        "train.init_checkpoint=%s", metrics, checkpoint)
        return results or {}
    logger.info("Its final evaluation is missing from %s: evaluating %s", metrics, checkpoint)
    model = build_model(cfg)
    Checkpointer(model, output_dir).load(checkpoint)
    results = do_test(cfg, model, with_curve=bool(cfg.train.get("eval_subset")))
    if comm.is_main_process() and results:
        record_final_evaluation(metrics, max_iter - 1, results)
        logger.info("Added the final evaluation to %s (iteration %d)", metrics, max_iter - 1)
    return results


def main(args: argparse.Namespace, extra_hooks: Callable[[nn.Module, SimpleTrainer], list] | None = None) -> dict:
    """Load and check the config and the output directory, lock it, set up, then evaluate
    (``--eval-only``), train (``extra_hooks`` as in :func:`do_train`) or, for a finished run
    resumed, :func:`finish_run`. Nothing is written before the config and the directory pass
    their checks; any error after that is written to ``log.txt``; the lock is released at the end."""
    cfg = load_config(args.config_file, args.opts)
    check_run_keys(cfg)
    resolve_num_classes(cfg)
    with run_in_output_dir(cfg, args, "Evaluation" if args.eval_only else "Training") as mode:
        if args.eval_only:
            model = build_model(cfg)
            check_evaluable(cfg.train.init_checkpoint, model)
            Checkpointer(model, cfg.train.output_dir, init_options=init_load_options(cfg)).load(
                cfg.train.init_checkpoint, full=False)
            save_run_config(cfg, "config_eval.yaml" if mode == "beside" else "config.yaml")
            return do_test(cfg, model)
        if mode == "finished":
            return finish_run(cfg)
        return do_train(args, cfg, extra_hooks=extra_hooks)


def run(argv: list[str] | None = None) -> None:
    """Parse ``argv`` and launch ``main`` on every process (the command-line entry point), or
    submit the command as a cluster job with ``--launcher``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = default_argument_parser("Train or evaluate a detector from a LazyConfig").parse_args(argv)
    if launcher_requested(args):
        setup_logger()
        try:
            submit_tool("train", argv, args)
        except SubmitError as e:  # no Slurm here: the message, not a traceback
            sys.exit(f"error: {e}")
        return
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
