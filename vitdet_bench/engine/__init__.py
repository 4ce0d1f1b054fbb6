"""Training engine: loop and hooks, AMP, checkpoints, distributed launch, the train / test drivers."""

from ..utils.events import EventStorage, get_event_storage
from .defaults import (
    build_model,
    create_ddp_model,
    default_argument_parser,
    default_setup,
    do_test,
    do_train,
    init_load_options,
    load_config,
    main,
    prepare_output_dir,
    resolve_device,
    resolve_num_classes,
    run,
    save_run_config,
)
from .hooks import EvalHook, IterationTimer, LRScheduler, PeriodicCheckpointer, PeriodicWriter
from .launch import launch
from .predict_images import predict_images
from .predictor import Predictor
from .train_loop import HookBase, SimpleTrainer, TrainerBase

__all__ = [
    "EvalHook",
    "EventStorage",
    "HookBase",
    "IterationTimer",
    "LRScheduler",
    "PeriodicCheckpointer",
    "PeriodicWriter",
    "Predictor",
    "SimpleTrainer",
    "TrainerBase",
    "build_model",
    "create_ddp_model",
    "default_argument_parser",
    "default_setup",
    "do_test",
    "do_train",
    "get_event_storage",
    "init_load_options",
    "launch",
    "load_config",
    "main",
    "predict_images",
    "prepare_output_dir",
    "resolve_device",
    "resolve_num_classes",
    "run",
    "save_run_config",
]
