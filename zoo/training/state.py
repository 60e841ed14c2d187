"""What a training run changes as it goes, in one place: :class:`TrainState`.

The :class:`~zoo.training.trainer.Trainer` creates one in ``__init__`` and everything that moves a run
forward writes it: the loop (``step``, ``epoch``, ``batch_in_epoch``), the step (``skipped``,
``logit_scale``), evaluation (``best``), the run log (``last_log``), the signal handler
(``stop_requested``, ``signal``). The :class:`~zoo.training.checkpointing.Checkpointer` writes the
position part of it into each checkpoint's ``state.json`` and restores it on resume.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class TrainState:
    # -- the position (checkpointed) -------------------------------------------------------------
    step: int = 0                     # optimizer steps taken (skipped batches count: the schedule advanced)
    epoch: int = 0
    batch_in_epoch: int = 0           # batches of `epoch` already consumed
    best: float = float("-inf")       # best value of eval.best_metric so far, times +1 (max) or -1 (min)
    skipped: int = 0                  # batches skipped for a NaN/inf loss (run.on_nonfinite = "skip")
    last_log: dict[str, Any] = field(default_factory=dict)  # the last metrics.jsonl line: final loss, samples/s
    # -- read by the loop, not checkpointed --------------------------------------------------------
    logit_scale: torch.Tensor | None = None  # () the temperature the last forward used (detached; logged)
    stop_requested: str | None = None  # why the loop stops early: a signal's name, "stop_at_step=N", …
    signal: str | None = None          # the signal (SIGINT / SIGTERM) that asked for it, if one did
    stop_at_step: int | None = None    # stop (with a checkpoint) once this step is reached

