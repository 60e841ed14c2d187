"""The trainer's checkpoints: writing them (every rank's part gathered, rank 0 writes) and resuming.

:class:`Checkpointing` is mixed into :class:`zoo.training.trainer.Trainer`; it uses the trainer's
``model``, ``optimizer``, ``scheduler``, ``dist``, ``fsdp``, ``recipe``, ``ckpt_root`` and
position (``step``, ``epoch``, ``batch_in_epoch``, ``steps_per_epoch``, ``total_steps``, ``best``).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from zoo.errors import CheckpointError, RecipeError
from zoo.files import atomic_write_text
from zoo.protocols import ObjectiveTraits
from zoo.training.checkpoints import (
    checkpoint_step,
    checkpoint_weights,
    complete_checkpoints,
    corrupt_file,
    load_checkpoint,
    load_optimizer_state,
    model_and_optimizer_state,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from zoo.training.distributed import barrier, gather_objects
from zoo.training.fsdp import load_full_states
from zoo.training.rundir import finite_json

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
                if ObjectiveTraits.of(m).generator is not None}

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
                    "total_steps": self.total_steps, "best": self.best, "skipped": self.skipped,
                    "dataset_len": len(self.dataset), "last_log": finite_json(self._last)}
            path = save_checkpoint(self.ckpt_root, self.step, weights, training, meta,
                                   keep=self.recipe.run.keep_checkpoints)
        barrier(self.dist)
        return path

    def _resume(self) -> None:
        found = self._valid_checkpoint()
        if found is None:
            log.warning("no complete checkpoint in %s yet (the run stopped before its first one); starting from "
                        "step 0", self.ckpt_root)
            return
        training, meta = load_checkpoint(found, None if self.fsdp else self.model)
        if meta.get("dataset_len", len(self.dataset)) != len(self.dataset):
            raise RecipeError(f"the dataset {self.recipe.data.dataset!r} has {len(self.dataset)} rows, but the run in "
                              f"{self.run_dir} was trained on {meta['dataset_len']} ({found / 'state.json'}); its "
                              f"data position would not continue. Resume with the same data, or start a new run.")
        try:
            if self.fsdp:  # every rank reads the full state and keeps its own shard
                load_full_states(self.model, self.optimizer, checkpoint_weights(found), training["optimizer"])
            else:
                load_optimizer_state(self.model, self.optimizer, training["optimizer"])
            self.scheduler.load_state_dict(training["scheduler"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise CheckpointError(f"{found / 'training.pt'}: 'optimizer'/'scheduler' do not fit this model and "
                                  f"recipe ({type(exc).__name__}: {exc}); the checkpoint is from another "
                                  f"architecture or corrupt. Resume with the run's own recipe, or start a new run.") from exc
        self.step, self.epoch, self.batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        self._restore_rng(training.get("rng_per_rank") or [training["rng"]])
        generators = self._objective_generators()
        for name, state in training.get("objective_rng", {}).items():
            if name in generators:
                generators[name].set_state(state)
        self.best, self.skipped = meta.get("best", float("-inf")), meta.get("skipped", 0)
        self._last = dict(meta.get("last_log") or {})
        if self.batch_in_epoch >= self.steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        log.info("resumed from %s at step %d (epoch %d, batch %d)", found, self.step, self.epoch,
                 self.batch_in_epoch)

    def _valid_checkpoint(self) -> Path | None:
        """The newest checkpoint whose files match their SHA-256 in MANIFEST. A corrupt one is
        renamed ``corrupt-step-…`` (kept for inspection, no longer counted or pruned) with a warning."""
        found = complete_checkpoints(self.ckpt_root)
        for path in reversed(found):
            bad = corrupt_file(path)
            if bad is None:
                return path
            if self.dist.main:
                aside = path.with_name(f"corrupt-{path.name}")
                if not aside.exists():
                    path.rename(aside)
                log.warning("checkpoint at step %d is corrupt: %s does not match its SHA-256 in MANIFEST; moved "
                            "aside to %s, resuming from the one before", checkpoint_step(path), path / bad, aside)
        if found:
            raise CheckpointError(f"every checkpoint in {self.ckpt_root} is corrupt (their files do not match the "
                                  f"SHA-256 in MANIFEST); nothing to resume from. Start again with --overwrite.")
        return None


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
