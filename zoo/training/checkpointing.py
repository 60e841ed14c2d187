"""The trainer's checkpoints: writing them (every rank's part gathered, rank 0 writes) and resuming.

    checkpoints = Checkpointer(run_dir / "checkpoints", state=state, model=model, optimizer=optimizer, …)
    checkpoints.save()      # → run_dir/checkpoints/step-XXXXXXXX (collective: every rank calls it)
    checkpoints.resume()    # the newest valid checkpoint → the weights, optimizer, schedule, RNGs and ``state``

A :class:`Checkpointer` is handed everything it reads and restores when it is built; it changes the
run's position only through the :class:`~zoo.training.state.TrainState` it shares with the trainer.
The files themselves (their layout, manifest, pruning) are :mod:`zoo.training.checkpoints`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from zoo.errors import CheckpointError, RecipeError
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
from zoo.training.distributed import DistInfo, barrier, gather_objects
from zoo.training.fsdp import load_full_states
from zoo.training.rundir import finite_json
from zoo.training.state import TrainState

log = logging.getLogger("zoo.train")


class Checkpointer:
    """Saves and resumes one run. ``root`` is the run's ``checkpoints/`` directory; ``fsdp`` says the
    model's towers are sharded (states are gathered to rank 0 to write, re-sharded to resume);
    ``dataset_len`` / ``dataset_name`` let a resume refuse other data; ``seed`` reseeds ranks that a
    checkpoint written at another world size has no RNG stream for; ``keep`` is how many to keep."""

    def __init__(self, root: Path, *, state: TrainState, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, objective: torch.nn.Module, dist: DistInfo,
                 fsdp: bool, total_steps: int, steps_per_epoch: int, dataset_len: int, dataset_name: str,
                 seed: int, keep: int):
        self.root, self.state = root, state
        self.model, self.optimizer, self.scheduler, self.objective = model, optimizer, scheduler, objective
        self.dist, self.fsdp = dist, fsdp
        self.total_steps, self.steps_per_epoch = total_steps, steps_per_epoch
        self.dataset_len, self.dataset_name = dataset_len, dataset_name
        self.seed, self.keep = seed, keep

    def save(self) -> Path:
        """Rank 0 writes; every rank waits for it (the others must not run ahead of a checkpoint)."""
        s = self.state
        path = self.root / f"step-{s.step:08d}"
        weights, optimizer = model_and_optimizer_state(self.model, self.optimizer, self.fsdp)  # collective (FSDP)
        rngs = gather_objects(rng_state(), self.dist)  # each rank draws its own dropout masks: keep every stream
        if self.dist.main:
            training = {"optimizer": optimizer, "scheduler": self.scheduler.state_dict(), "rng": rngs[0],
                        "rng_per_rank": rngs,
                        "objective_rng": {k: g.get_state() for k, g in self.objective_generators().items()}}
            meta = {"step": s.step, "epoch": s.epoch, "batch_in_epoch": s.batch_in_epoch,
                    "total_steps": self.total_steps, "best": s.best, "skipped": s.skipped,
                    "dataset_len": self.dataset_len, "last_log": finite_json(s.last_log)}
            path = save_checkpoint(self.root, s.step, weights, training, meta, keep=self.keep)
        barrier(self.dist)
        return path

    def resume(self) -> None:
        """Continue from the newest valid checkpoint: weights, optimizer, schedule, every RNG stream and
        the position in ``state``. No checkpoint yet (stopped before its first one): step 0, a warning."""
        found = self._valid_checkpoint()
        if found is None:
            log.warning("no complete checkpoint in %s yet (the run stopped before its first one); starting from "
                        "step 0", self.root)
            return
        training, meta = load_checkpoint(found, None if self.fsdp else self.model)
        if meta.get("dataset_len", self.dataset_len) != self.dataset_len:
            raise RecipeError(f"the dataset {self.dataset_name!r} has {self.dataset_len} rows, but the run in "
                              f"{self.root.parent} was trained on {meta['dataset_len']} ({found / 'state.json'}); "
                              f"its data position would not continue. Resume with the same data, or start a new run.")
        try:
            if self.fsdp:  # every rank reads the full state and keeps its own shard
                load_full_states(self.model, self.optimizer, checkpoint_weights(found), training["optimizer"])
            else:
                load_optimizer_state(self.model, self.optimizer, training["optimizer"])
            self.scheduler.load_state_dict(training["scheduler"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise CheckpointError(f"{found / 'training.pt'}: 'optimizer'/'scheduler' do not fit this model and "
                                  f"recipe ({type(exc).__name__}: {exc}); the checkpoint is from another architecture "
                                  f"or corrupt. Resume with the run's own recipe, or start a new run.") from exc
        s = self.state
        s.step, s.epoch, s.batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        self._restore_rng(training.get("rng_per_rank") or [training["rng"]])
        generators = self.objective_generators()
        for name, state in training.get("objective_rng", {}).items():
            if name in generators:
                generators[name].set_state(state)
        s.best, s.skipped = meta.get("best", float("-inf")), meta.get("skipped", 0)
        s.last_log = dict(meta.get("last_log") or {})
        if s.batch_in_epoch >= self.steps_per_epoch:
            s.epoch, s.batch_in_epoch = s.epoch + 1, 0
        log.info("resumed from %s at step %d (epoch %d, batch %d)", found, s.step, s.epoch, s.batch_in_epoch)

    def objective_generators(self) -> dict[str, torch.Generator]:
        """The objective's own random generators (MoCHi's mixing, a Symile given one), by module name:
        checkpointed so that their draws continue after a resume too."""
        return {name: m.generator for name, m in self.objective.named_modules()
                if ObjectiveTraits.of(m).generator is not None}

    def _restore_rng(self, per_rank: list[dict[str, Any]]) -> None:
        """At the world size that wrote the checkpoint every rank continues its own RNG streams
        (exact resume); at another, the streams cannot continue: rank 0 takes the first, the others
        fresh seeds apart from each other and from earlier steps."""
        if len(per_rank) == self.dist.world:
            set_rng_state(per_rank[self.dist.rank])
            return
        set_rng_state(per_rank[0])
        if self.dist.rank:
            seed_everything(self.seed + 1_000_003 * self.dist.rank + self.state.step)
        if self.dist.main:
            log.warning("resuming a %d-process checkpoint with %d processes: the data order is kept, but random "
                        "draws (dropout) differ from an uninterrupted run", len(per_rank), self.dist.world)

    def _valid_checkpoint(self) -> Path | None:
        """The newest checkpoint whose files match their SHA-256 in MANIFEST. A corrupt one is
        renamed ``corrupt-step-…`` (kept for inspection, no longer counted or pruned) with a warning."""
        found = complete_checkpoints(self.root)
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
            raise CheckpointError(f"every checkpoint in {self.root} is corrupt (their files do not match the "
                                  f"SHA-256 in MANIFEST); nothing to resume from. Start again with --overwrite.")
        return None
