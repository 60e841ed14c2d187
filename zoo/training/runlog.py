"""What a run reports while it trains: ``metrics.jsonl``, the progress bar, throughput and its log lines.

    runlog = RunLog(run_dir, main=True, progress=True, total_steps=1000, log_every=10)
    with runlog.writing(step, dataset="synthetic-pairs", steps_per_epoch=8, device=device):
        record = runlog.step(state, loss, batch_size, lr)   # a metrics line every log_every steps, else None
        runlog.evaluation(step, results)                      # {"step": …, "eval": {…}} and the table

``metrics.jsonl`` holds one JSON object per line: a training line ``{step, epoch, loss, lr, logit_scale,
samples_per_s, skipped}`` every ``run.log_every`` steps and an evaluation line ``{step, eval}`` per
evaluation. Only rank 0 writes it; the other ranks write to ``os.devnull`` and show no bar.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from zoo.files import atomic_write_text
from zoo.training.rundir import METRICS
from zoo.training.state import TrainState

log = logging.getLogger("zoo.train")


class RunLog:
    """The run's metrics file, progress bar and throughput window (samples since the last logged line)."""

    def __init__(self, run_dir: Path, *, main: bool, progress: bool, total_steps: int, log_every: int):
        self.run_dir, self.main, self.progress = run_dir, main, progress
        self.total_steps, self.log_every = total_steps, log_every
        self.path = run_dir / METRICS if main else Path(os.devnull)
        self._file = None   # metrics.jsonl, open inside writing()
        self._bar = None    # the tqdm bar, open inside writing() until close_progress()
        self._window = (time.perf_counter(), 0)  # (start, samples) of the throughput window

    @contextlib.contextmanager
    def writing(self, step: int, *, dataset: str, steps_per_epoch: int, device: torch.device) -> Iterator[None]:
        """Training from ``step`` on: ``metrics.jsonl`` cut back to ``step`` (a resume logs later steps
        again), opened for appending, and the progress bar started."""
        if self.main:
            repair_metrics(self.path, step)
        log.info("training %s for %d steps (%d per epoch) on %s → %s", dataset, self.total_steps, steps_per_epoch,
                 device, self.run_dir)
        self._bar = tqdm(total=self.total_steps, initial=step, disable=not (self.progress and self.main),
                         desc=self.run_dir.name, unit="step", dynamic_ncols=True)
        self._window = (time.perf_counter(), 0)
        try:
            with open(self.path, "a", encoding="utf-8") as self._file:
                yield
        finally:
            self.close_progress()
            self._file = None

    def step(self, state: TrainState, loss: float, batch_size: int, lr: float) -> dict[str, Any] | None:
        """After one optimizer step (``state.step`` already counts it): the bar moves, the samples count
        towards throughput, and every ``log_every`` steps (and at the last) a line is written and returned."""
        t0, n = self._window
        n += batch_size
        self._window = (t0, n)
        self._bar.update(1)
        if state.step % self.log_every and state.step != self.total_steps:
            return None
        dt = time.perf_counter() - t0
        scale = state.logit_scale.item() if state.logit_scale is not None else float("nan")
        record = {"step": state.step, "epoch": state.epoch, "loss": loss, "lr": lr, "logit_scale": scale,
                  "samples_per_s": n / dt if dt > 0 else float("nan"), "skipped": state.skipped}
        self._write(record)
        self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        self._window = (time.perf_counter(), 0)
        return record

    def evaluation(self, step: int, results: dict[str, float]) -> None:
        """An evaluation line and its table in the log."""
        from zoo.evaluation.runner import format_table
        self._write({"step": step, "eval": results})
        log.info("step %d evaluation:\n%s", step, format_table(results))

    def logged_eval(self, step: int) -> dict[str, Any] | None:
        """The evaluation already logged at ``step`` (a run killed after its final evaluation), if any.
        Every rank reads rank 0's file: they must agree on whether the final checkpoint is written."""
        return logged_eval(self.run_dir / METRICS, step)

    def close_progress(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    # -- the run's log lines -----------------------------------------------------------------------
    def already_finished(self, step: int) -> None:
        log.info("the run in %s already finished (step %d of %d); nothing to do. Raise run.steps / run.epochs "
                 "(--set) to train further.", self.run_dir, step, self.total_steps)

    def stopped(self, step: int, reason: str, checkpoint: Path) -> None:
        log.warning("stopped at step %d (%s); checkpoint %s. Resume with: zoo train --resume %s",
                    step, reason, checkpoint, self.run_dir)

    def finished(self, step: int, final_loss: float | None, pictures: list[Path]) -> None:
        log.info("done: %d steps, final loss %.4f; wrote %s\npictures: %s", step,
                 final_loss or float("nan"), self.run_dir, ", ".join(str(p) for p in pictures))


def repair_metrics(path: Path, step: int) -> None:
    """On resume: keep the logged lines up to the checkpoint's ``step`` (later ones will be logged again),
    each once, and drop a partial last line left by a kill. Written to a temporary file and renamed,
    so a kill during the repair leaves the old file or the new one."""
    if not path.exists():
        return
    keep, seen = [], set()
    for line in path.read_text("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill
        if not isinstance(record, dict) or not isinstance(record.get("step", 0), int) or record.get("step", 0) > step:
            continue
        key = (record.get("step"), "eval" in record)
        if key not in seen:
            seen.add(key)
            keep.append(json.dumps(record) + "\n")
    atomic_write_text(path, "".join(keep))


def logged_eval(path: Path, step: int) -> dict[str, Any] | None:
    """The evaluation logged at ``step`` (a run killed after its final evaluation), if any."""
    if not path.exists():
        return None
    for line in path.read_text("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("step") == step and isinstance(record.get("eval"), dict):
            return record["eval"]
    return None
