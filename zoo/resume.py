"""The trainer's checkpoints: writing them (every rank's part gathered, rank 0 writes) and resuming.

:class:`Checkpointing` is mixed into :class:`zoo.trainer.Trainer`; it uses the trainer's
``model``, ``optimizer``, ``scheduler``, ``dist``, ``fsdp``, ``recipe``, ``ckpt_root`` and
position (``step``, ``epoch``, ``batch_in_epoch``, ``steps_per_epoch``, ``total_steps``, ``best``).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from .checkpoint import (checkpoint_weights, complete_checkpoints, load_checkpoint, load_optimizer_state,
                         model_and_optimizer_state, rng_state, save_checkpoint, seed_everything, set_rng_state)
from .distributed import barrier, gather_objects
from .fsdp import load_full_states

log = logging.getLogger("zoo.train")


class Checkpointing:
    def _restore_rng(self, per_rank: list[dict[str, Any]]) -> None:
        """At the world size that wrote the checkpoint every rank continues its own RNG streams
        (exact resume); at another, the streams cannot continue: rank 0 takes the first, the others
        fresh seeds apart from each other and from earlier steps."""
        if len(per_rank) == self.dist.world:
            set_rng_state(per_rank[self.dist.rank])
            return
        set_rng_state(per_rank[0])
        if self.dist.rank:
            seed_everything(self.recipe.run.seed + 1_000_003 * self.dist.rank + self.step)
        if self.dist.main:
            log.warning("resuming a %d-process checkpoint with %d processes: the data order is kept, but random "
                        "draws (dropout) differ from an uninterrupted run", len(per_rank), self.dist.world)

    def _objective_generators(self) -> dict[str, torch.Generator]:
        """The objective's own random generators (MoCHi's mixing, a Symile given one), by module name:
        checkpointed so that their draws continue after a resume too."""
        return {name: m.generator for name, m in self.objective.named_modules()
                if isinstance(getattr(m, "generator", None), torch.Generator)}

    def save_checkpoint(self) -> Path:
        """Rank 0 writes; every rank waits for it (the others must not run ahead of a checkpoint)."""
        path = self.ckpt_root / f"step-{self.step:08d}"
        weights, optimizer = model_and_optimizer_state(self.model, self.optimizer, self.fsdp)  # collective (FSDP)
        rngs = gather_objects(rng_state(), self.dist)  # each rank draws its own dropout masks: keep every stream
        if self.dist.main:
            training = {"optimizer": optimizer, "scheduler": self.scheduler.state_dict(), "rng": rngs[0],
                        "rng_per_rank": rngs,
                        "objective_rng": {k: g.get_state() for k, g in self._objective_generators().items()}}
            meta = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                    "total_steps": self.total_steps, "best": self.best, "skipped": self.skipped}
            path = save_checkpoint(self.ckpt_root, self.step, weights, training, meta,
                                   keep=self.recipe.run.keep_checkpoints)
        barrier(self.dist)
        return path

    def _resume(self) -> None:
        found = complete_checkpoints(self.ckpt_root)
        if not found:
            log.warning("no complete checkpoint in %s; starting from step 0", self.ckpt_root)
            return
        training, meta = load_checkpoint(found[-1], None if self.fsdp else self.model)
        if self.fsdp:  # every rank reads the full state and keeps its own shard
            load_full_states(self.model, self.optimizer, checkpoint_weights(found[-1]), training["optimizer"])
        else:
            load_optimizer_state(self.model, self.optimizer, training["optimizer"])
        self.scheduler.load_state_dict(training["scheduler"])
        self.step, self.epoch, self.batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        self._restore_rng(training.get("rng_per_rank") or [training["rng"]])
        generators = self._objective_generators()
        for name, state in training.get("objective_rng", {}).items():
            if name in generators:
                generators[name].set_state(state)
        self.best, self.skipped = meta.get("best", float("-inf")), meta.get("skipped", 0)
        if self.batch_in_epoch >= self.steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        log.info("resumed from %s at step %d (epoch %d, batch %d)", found[-1], self.step, self.epoch,
                 self.batch_in_epoch)


def truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop logged lines past the checkpoint's step (they will be logged again)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    path.write_text("".join(k + "\n" for k in keep))
