"""Per-iteration metric storage and the writers that drain it (console, metrics.json, TensorBoard)."""

from __future__ import annotations

import datetime
import json
import logging
import os
import time
from collections import defaultdict

import torch
from fvcore.common.history_buffer import HistoryBuffer

__all__ = ["EventStorage", "get_event_storage", "try_put_scalar", "JSONWriter", "TensorboardWriter",
           "CommonMetricPrinter"]

_CURRENT_STORAGE: list["EventStorage"] = []


def get_event_storage() -> "EventStorage":
    if not _CURRENT_STORAGE:
        raise RuntimeError("get_event_storage() called outside of an EventStorage context")
    return _CURRENT_STORAGE[-1]


def try_put_scalar(name: str, value: float, smoothing_hint: bool = True) -> None:
    """Record a scalar from inside a model when training (an open storage); a no-op otherwise."""
    if _CURRENT_STORAGE:
        _CURRENT_STORAGE[-1].put_scalar(name, value, smoothing_hint)


class EventStorage:
    """Scalars recorded during training, keyed by name, each with its history.

    ``put_scalar(name, value, smoothing_hint)``: writers report the median of the last window for
    smoothed scalars (losses, times) and the latest value otherwise (lr).
    """

    def __init__(self, start_iter: int = 0) -> None:
        self.iter = start_iter
        self._history: dict[str, HistoryBuffer] = defaultdict(HistoryBuffer)
        self._smoothing: dict[str, bool] = {}
        self._latest: dict[str, tuple[float, int]] = {}
        self._write_requested = False

    def request_write(self) -> None:
        """Ask the periodic writers to write in this iteration, outside their period: writers
        keep only each scalar's latest value, so an evaluation that runs between two writes
        would otherwise be replaced by the next one before it reaches ``metrics.json``."""
        self._write_requested = True

    def pop_write_request(self) -> bool:
        """Whether a write was requested since the last call (and clear the request)."""
        requested, self._write_requested = self._write_requested, False
        return requested

    def put_scalar(self, name: str, value: float, smoothing_hint: bool = True) -> None:
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        self._history[name].update(value, self.iter)
        self._latest[name] = (value, self.iter)
        self._smoothing.setdefault(name, smoothing_hint)

    def put_scalars(self, smoothing_hint: bool = True, **kwargs: float) -> None:
        for k, v in kwargs.items():
            self.put_scalar(k, v, smoothing_hint)

    def history(self, name: str) -> HistoryBuffer:
        if name not in self._history:
            raise KeyError(f"No history metric available for {name}")
        return self._history[name]

    def latest(self) -> dict[str, tuple[float, int]]:
        return self._latest

    def latest_with_smoothing_hint(self, window: int = 20) -> dict[str, tuple[float, int]]:
        return {
            k: (self._history[k].median(window) if self._smoothing[k] else v, it)
            for k, (v, it) in self._latest.items()
        }

    def step(self) -> None:
        self.iter += 1

    def __enter__(self) -> "EventStorage":
        _CURRENT_STORAGE.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        assert _CURRENT_STORAGE[-1] is self
        _CURRENT_STORAGE.pop()


class JSONWriter:
    """Append one JSON object per logged iteration to ``metrics.json`` (Detectron2's format)."""

    def __init__(self, path: str, window_size: int = 20) -> None:
        self._file = open(path, "a", encoding="utf-8")
        self._window = window_size
        self._last_written = -1

    def write(self) -> None:
        storage = get_event_storage()
        by_iter: dict[int, dict] = defaultdict(dict)
        for k, (v, it) in storage.latest_with_smoothing_hint(self._window).items():
            if it > self._last_written:
                by_iter[it][k] = v
        for it in sorted(by_iter):
            self._file.write(json.dumps({"iteration": it, **by_iter[it]}, sort_keys=True) + "\n")
        if by_iter:
            self._last_written = max(by_iter)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class TensorboardWriter:
    """Write the latest scalars as TensorBoard events in the output directory."""

    def __init__(self, log_dir: str, window_size: int = 20) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir)
        self._window = window_size
        self._last_written = -1

    def write(self) -> None:
        storage = get_event_storage()
        new_last = self._last_written
        for k, (v, it) in storage.latest_with_smoothing_hint(self._window).items():
            if it > self._last_written:
                self._writer.add_scalar(k, v, it)
                new_last = max(new_last, it)
        self._last_written = new_last
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class CommonMetricPrinter:
    """Console line with iteration, ETA, losses, time, data time, lr and peak memory."""

    def __init__(self, max_iter: int, window_size: int = 20) -> None:
        self._max_iter = max_iter
        self._window = window_size
        self._last: tuple[int, float] | None = None
        self.logger = logging.getLogger("vitdet_bench.train")

    def _eta(self, storage: EventStorage) -> str:
        it = storage.iter
        try:
            eta = storage.history("eta_seconds").latest()
            return str(datetime.timedelta(seconds=int(eta)))
        except KeyError:
            pass
        now = time.perf_counter()
        if self._last is not None and it > self._last[0]:
            per_iter = (now - self._last[1]) / (it - self._last[0])
            self._last = (it, now)
            return str(datetime.timedelta(seconds=int(per_iter * (self._max_iter - it - 1))))
        self._last = (it, now)
        return "N/A"

    def write(self) -> None:
        storage = get_event_storage()
        it = storage.iter
        if it >= self._max_iter:
            return
        latest = storage.latest_with_smoothing_hint(self._window)
        losses = "  ".join(f"{k}: {v:.4g}" for k, (v, _) in sorted(latest.items()) if "loss" in k)
        parts = [f"eta: {self._eta(storage)}", f"iter: {it + 1}/{self._max_iter}", losses]
        for key, fmt in (("time", "{:.4f}"), ("data_time", "{:.4f}")):
            if key in latest:
                parts.append(f"{key}: " + fmt.format(storage.history(key).median(self._window)))
        if "lr" in latest:
            parts.append(f"lr: {latest['lr'][0]:.5g}")
        if "max_mem_mb" in latest:
            parts.append(f"max_mem: {latest['max_mem_mb'][0]:.0f}M")
        self.logger.info("  ".join(p for p in parts if p))

    def close(self) -> None:
        pass
