"""The trainer: a recipe in, a run directory out. Read it top to bottom.

    result = zoo.train("recipes/digits-clip.toml", overrides={"optim.lr": 3e-4})
    result.run_dir   # config.json, model.safetensors, recipe.toml, README.md, metrics.jsonl, plots/

- :func:`train` — the entry point: a recipe (or a run to resume) → a :class:`Trainer` → :meth:`Trainer.fit`;
- :class:`Trainer` — ``__init__`` builds everything a run needs, the run's :class:`TrainState` included;
  :meth:`Trainer.fit` is the loop; :meth:`Trainer.train_step` one optimizer step;
- collaborators, each built in ``__init__`` and handed what it uses: :class:`~zoo.training.step.ForwardBackward`
  (loss and gradients of a batch), :class:`~zoo.training.checkpointing.Checkpointer` (save, resume),
  :class:`~zoo.training.runlog.RunLog` (metrics.jsonl, progress bar, throughput, log lines).

One step under torchrun: ``train_step`` → ``ForwardBackward`` encodes through DDP
(:func:`zoo.training.distributed.wrap`), takes the objective's local loss
(:func:`zoo.training.distributed.local_loss`) or the loss on the all-gathered batch
(:func:`zoo.training.distributed.gather_all`) and backpropagates (DDP averages the gradients);
under FSDP ``train_step`` then averages the unsharded temperature and bias with
:func:`zoo.training.fsdp.average_replicated_grads`; then clipping, the optimizer and the schedule.
:mod:`zoo.training.step` spells the path out.
"""
from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.checks import call_factory, recipe_key
from zoo.data.collate import Batch
from zoo.data.datasets import create_dataset
from zoo.data.inmemory import datasets, recipe_with_objects
from zoo.data.loader import training_loader, worker_deaths
from zoo.errors import RecipeError, TrainingInterrupted
from zoo.evaluation.runner import check_metric_fields
from zoo.logs import progress_logging
from zoo.model import ContrastiveModel
from zoo.plugins import registry
from zoo.protocols import ObjectiveTraits
from zoo.recipes import Recipe
from zoo.training.build import apply_freeze, build_model, prepare_encoders
from zoo.training.checkpointing import Checkpointer
from zoo.training.checkpoints import seed_everything
from zoo.training.distributed import DistInfo, init_distributed, shutdown
from zoo.training.fsdp import PlainCopy, average_replicated_grads, shard
from zoo.training.optim import lr_lambda, make_optimizer
from zoo.training.preflight import allocation_guard, pick_device
from zoo.training.rundir import (
    claim_run_dir,
    finite_json,
    read_results,
    stop_on_signals,
    stored_recipe,
    write_results,
    writing,
)
from zoo.training.runlog import RunLog
from zoo.training.state import TrainState
from zoo.training.step import ForwardBackward, NonFiniteLossError

log = logging.getLogger("zoo.train")

__all__ = ["NonFiniteLossError", "TrainResult", "Trainer", "TrainingInterrupted", "TrainState", "train"]


def train(recipe: str | Path | Recipe | dict | None, overrides: dict[str, Any] | list[str] | None = None, *,
          resume: bool = False, run_dir: str | Path | None = None, overwrite: bool = False,
          progress: bool | None = None, dataset=None, eval_dataset=None,
          model: ContrastiveModel | None = None) -> TrainResult:
    """Train from a recipe; ``resume=True`` continues from the run directory's last checkpoint (``recipe``
    may then be ``None``: the run's stored ``recipe.toml``); ``overwrite=True`` deletes a previous run there.
    ``dataset`` / ``eval_dataset`` (a Dataset or a list of dicts) and ``model`` (a ContrastiveModel,
    trained in place) replace the recipe's registered names: see :mod:`zoo.data.inmemory`.

    SIGINT / SIGTERM during training finish the step, write a checkpoint and then raise
    :class:`TrainingInterrupted` (its ``result`` says where), so that a script training several runs
    stops too."""
    recipe = stored_recipe(run_dir) if recipe is None and resume else recipe
    recipe = recipe_with_objects(recipe, overrides, dataset=dataset, eval_dataset=eval_dataset, model=model)
    trainer = Trainer(recipe, run_dir=run_dir, resume=resume, overwrite=overwrite, progress=progress,
                      dataset=dataset, eval_dataset=eval_dataset, model=model)
    try:
        result = trainer.fit()
    except TrainingInterrupted:
        shutdown(trainer.dist)  # the checkpoint is written: leave the process group, then tell the caller
        raise
    shutdown(trainer.dist)  # under torchrun: leave the process group together (no-op for one process)
    return result


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, Any]
    model: ContrastiveModel | None = field(default=None, repr=False)


class Trainer:
    """One run: everything built in ``__init__``; :meth:`fit` trains it. What changes as it trains is
    ``self.state`` (a :class:`TrainState`); every other attribute is fixed once built."""

    def __init__(self, recipe: Recipe, *, run_dir: str | Path | None = None, resume: bool = False,
                 overwrite: bool = False, progress: bool | None = None, dataset=None, eval_dataset=None,
                 model: ContrastiveModel | None = None):
        r = recipe.run
        self.recipe = recipe
        self.given = datasets(dataset, eval_dataset)  # in-memory data replacing [data] / [eval] names
        self.run_dir = Path(run_dir) if run_dir else Path(r.output_dir) / (
            r.name or (Path(recipe.path).stem if recipe.path else "run"))
        self.device, self.dist = _device_and_processes(r.device)
        self.state = TrainState()
        # the run directory is this run's (checked, locked, recipe stored) before anything is built
        self.claim = claim_run_dir(self.run_dir, recipe, resume=resume, overwrite=overwrite) if self.dist.main else None
        try:  # (the order matters: each part below draws from the RNG seeded here)
            seed_everything(r.seed + self.dist.rank)
            if r.deterministic:
                torch.use_deterministic_algorithms(True)
            with allocation_guard("[model]"):  # a model too large for memory is refused before it is allocated
                self.model = (model if model is not None else build_model(recipe)).to(self.device).train()
            apply_freeze(self.model, recipe)
            prepare_encoders(self.model, r)
            if r.grad_cache_chunk and r.fsdp:
                raise RecipeError("run.grad_cache_chunk with run.fsdp is not supported; use DDP (fsdp = false).")
            self.fsdp = r.fsdp and self.dist.enabled  # one process: nothing to shard
            self.plain = PlainCopy(self.model, self.dist.main) if self.fsdp else None  # rank 0's copy: eval, saving
            if self.fsdp:
                shard(self.model, self.device, self.dist.world)
            self.objective = _objective(recipe, self.model, self.device)
            self.dataset, self.loader, self.sampler, self.collator = self._make_loader()
            self._eval_datasets: dict[str, Any] = {}  # split → dataset, built on first use
            if recipe.eval.tasks and self.dist.main:  # the evaluation split is built and checked now, not at the end
                check_metric_fields(recipe.eval.best_metric, self.eval_dataset())
            self.steps_per_epoch = len(self.loader)
            self.total_steps = r.steps or r.epochs * self.steps_per_epoch
            self.optimizer = make_optimizer(self.model, recipe)
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(recipe, self.total_steps))
            self.max_log_scale = math.log(self.model.config.max_logit_scale)  # the temperature's clamp, each step
            self.forward_backward = ForwardBackward(
                self.model, self.objective, state=self.state, dist=self.dist, device=self.device, fsdp=self.fsdp,
                precision=r.precision, grad_cache_chunk=r.grad_cache_chunk, objective_name=recipe.objective.name)
            self.checkpoints = Checkpointer(
                self.run_dir / "checkpoints", state=self.state, model=self.model, optimizer=self.optimizer,
                scheduler=self.scheduler, objective=self.objective, dist=self.dist, fsdp=self.fsdp,
                total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch, dataset_len=len(self.dataset),
                dataset_name=recipe.data.dataset, seed=r.seed, keep=r.keep_checkpoints)
            self.runlog = RunLog(self.run_dir, main=self.dist.main, total_steps=self.total_steps,
                                 log_every=r.log_every, progress=r.progress if progress is None else progress)
            if resume:
                self.checkpoints.resume()  # last: it restores the RNG streams as the checkpoint left them
        except BaseException:
            self.close()  # a recipe that fails to build leaves the directory free for the next try
            raise

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train from ``state.step`` to the last step, then evaluate, save and report. A stop (SIGINT or
        SIGTERM, :meth:`request_stop`, ``state.stop_at_step``) finishes the step and writes a checkpoint;
        after a signal, :class:`TrainingInterrupted` tells the caller."""
        s = self.state
        try:
            with stop_on_signals(self.request_stop_by_signal), progress_logging():
                done = read_results(self.run_dir) if s.step >= self.total_steps else None
                if done is not None:  # resuming a finished run: nothing to do, nothing rewritten
                    self.runlog.already_finished(s.step)
                    return self._hand_back(TrainResult(self.run_dir, done, self.model))
                with self.runlog.writing(s.step, dataset=self.recipe.data.dataset,
                                         steps_per_epoch=self.steps_per_epoch, device=self.device), \
                        worker_deaths(self.loader, self._resume_hint):
                    for batch in self.batches():
                        loss = self.train_step(batch)
                        s.step, s.batch_in_epoch = s.step + 1, s.batch_in_epoch + 1
                        self._after_step(loss, batch.size)
                        if s.stop_requested:
                            break
                    self.runlog.close_progress()
                    if s.stop_requested and s.step < self.total_steps:
                        return self._hand_back(self._stopped())
                    evaluation = self.runlog.logged_eval(s.step)  # killed after it: not run again
                    if evaluation is None:
                        self.checkpoints.save()  # the trained weights are on disk before the final evaluation
                        evaluation = self.run_eval()
                return self._hand_back(self._finish(evaluation))
        finally:
            self.close()

    def batches(self):
        """Yield the batches from the current position to the end of training, moving ``state.epoch``."""
        s = self.state
        while s.step < self.total_steps:
            self.sampler.set_epoch(s.epoch, s.batch_in_epoch)  # its indices carry the epoch to the collator and dataset
            for batch in self.loader:
                yield batch
                if s.step >= self.total_steps:
                    return
            s.epoch, s.batch_in_epoch = s.epoch + 1, 0

    def _after_step(self, loss: float, batch_size: int) -> None:
        """Logging, periodic evaluation and checkpoints after one optimizer step."""
        r, s = self.recipe.run, self.state
        record = self.runlog.step(s, loss, batch_size, lr=self.scheduler.get_last_lr()[0])
        if record is not None:
            s.last_log = record
        if r.eval_every and s.step % r.eval_every == 0 and s.step < self.total_steps:
            self.run_eval()  # before the checkpoint: a resume from it neither repeats nor loses this evaluation
        if r.checkpoint_every and s.step % r.checkpoint_every == 0 and s.step < self.total_steps:
            self.checkpoints.save()
        if s.step == s.stop_at_step:
            s.stop_requested = f"stop_at_step={s.step}"

    # -- one step ----------------------------------------------------------------------------------
    def train_step(self, batch: Batch) -> float:
        """One optimizer step on one global batch; returns its loss (NaN for a skipped batch)."""
        try:
            self.forward_backward(batch)  # forward → objective → backward (zoo.training.step); .grad filled
        except NonFiniteLossError as exc:
            self.optimizer.zero_grad(set_to_none=True)
            return self._skip_or_raise(exc)
        if self.fsdp:
            average_replicated_grads(self.model)  # the temperature and bias FSDP leaves whole: DDP's mean by hand
        if self.recipe.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.model.logit_scale.clamp_(max=self.max_log_scale)
        return self.forward_backward.value  # loss.item(), read before the backward by the NaN check

    def _skip_or_raise(self, exc: NonFiniteLossError) -> float:
        """``run.on_nonfinite = "skip"``: the batch is consumed, the weights and optimizer untouched,
        the schedule advances; past ``run.max_skips`` skipped batches training stops all the same.
        Every rank sees the same (global) loss, so every rank skips the same step."""
        r, s = self.recipe.run, self.state
        if r.on_nonfinite != "skip":
            raise exc
        s.skipped += 1
        if s.skipped > r.max_skips:
            raise NonFiniteLossError(f"{exc} {s.skipped} batches skipped, more than run.max_skips = "
                                     f"{r.max_skips}; training stops.") from exc
        log.warning("step %d: non-finite loss, batch skipped (%d of at most %d)", s.step, s.skipped, r.max_skips)
        with warnings.catch_warnings():  # torch warns when no optimizer step came first: skipping it is the point
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            self.scheduler.step()
        return float("nan")

    # -- stopping, evaluating, finishing -------------------------------------------------------------
    def request_stop(self, reason: str = "requested") -> None:
        """Finish the current step, write a checkpoint and return."""
        self.state.stop_requested = reason

    def request_stop_by_signal(self, name: str) -> None:
        """SIGINT / SIGTERM (``name``): stop as :meth:`request_stop`, then raise :class:`TrainingInterrupted`."""
        self.state.signal = name
        self.request_stop(name)

    def _hand_back(self, result: TrainResult) -> TrainResult:
        """``result``; after a signal, :class:`TrainingInterrupted` carrying it (the run is safe on disk)."""
        if self.state.signal:
            raise TrainingInterrupted(self.state.signal, result)
        return result

    def _stopped(self) -> TrainResult:
        path = self.checkpoints.save()
        self.runlog.stopped(self.state.step, self.state.stop_requested, path)
        return TrainResult(self.run_dir, {"stopped_at": self.state.step, "checkpoint": str(path)}, self.model)

    def _resume_hint(self) -> str:
        if not self.dist.main or any((self.run_dir / "checkpoints").glob("step-*")):  # (rank 0 writes them)
            return f"Resume from the last checkpoint: zoo train --resume {self.run_dir}"
        return (f"No checkpoint was written yet (run.checkpoint_every = {self.recipe.run.checkpoint_every}): "
                f"start again with --overwrite.")

    def close(self) -> None:
        """Stop the loader's workers and release the run directory's lock (fit does, when it returns or fails)."""
        loader = getattr(self, "loader", None)  # (None when the recipe failed to build)
        workers = getattr(loader, "_iterator", None)  # kept across epochs: stopped with the run, not when collected
        if hasattr(workers, "_shutdown_workers"):
            self.loader._iterator = None
            try:  # (torch's own finally still terminates any worker left)
                workers._shutdown_workers()
            except RuntimeError:  # a worker died (reported by worker_deaths): torch's SIGCHLD handler says so again
                pass
        if self.claim is not None:
            self.claim.release()

    def run_eval(self) -> dict[str, float]:
        """Evaluate on the eval split (``[eval]``), log it, and keep the best checkpoint."""
        e, s = self.recipe.eval, self.state
        if not e.tasks:
            return {}
        model = self.plain_model()  # collective under FSDP
        if not self.dist.main:
            return {}
        from zoo.evaluation.runner import best_mode, needs_train, run_tasks
        results = run_tasks(model, self.eval_dataset(), e.tasks, e.options,
                            train_dataset=self.eval_dataset(split=self.recipe.data.split)
                            if needs_train(e.tasks) else None)
        self.runlog.evaluation(s.step, results)
        if e.best_metric:
            if e.best_metric not in results:
                raise RecipeError(f"eval.best_metric = {e.best_metric!r} is not among the metrics: {sorted(results)}.")
            sign = 1.0 if best_mode(e.best_metric, e.best_mode) == "max" else -1.0  # state.best holds sign × value
            if sign * results[e.best_metric] > s.best:
                s.best = sign * results[e.best_metric]
                with writing(self.run_dir / "best"):
                    model.save_pretrained(self.run_dir / "best", recipe_text=self.recipe.to_toml(),
                                          metrics={"step": s.step, **results})
        return results

    def _finish(self, evaluation: dict[str, float]) -> TrainResult:
        s = self.state
        model = self.plain_model()
        if not self.dist.main:
            return TrainResult(self.run_dir, {"steps": s.step, "rank": self.dist.rank}, self.model)
        last = s.last_log
        metrics = {"final_loss": last.get("loss"), "steps": s.step, "samples_per_s": last.get("samples_per_s"),
                   "skipped_batches": s.skipped,
                   **evaluation}
        from zoo.evaluation.plots import plot_training, report_pictures
        with writing(self.run_dir):  # a failed write is a RunDirError (disk full, read-only)
            plots = plot_training(self.run_dir / "metrics.jsonl", self.run_dir / "plots",
                                  train_split=self.recipe.data.split, eval_split=self.recipe.data.eval_split)
            if self.recipe.eval.tasks:
                plots += report_pictures(model, self.eval_dataset(), self.run_dir / "plots", objective=self.objective)
            model.eval()
            model.save_pretrained(self.run_dir, recipe_text=self.recipe.to_toml(), metrics=finite_json(metrics))
        write_results(self.run_dir, metrics)
        self.runlog.finished(s.step, metrics["final_loss"], plots)
        return TrainResult(self.run_dir, metrics, model)

    # -- helpers ---------------------------------------------------------------------------------------
    def _make_loader(self):
        """``(dataset, loader, sampler, collator)`` of the training split for this process
        (:func:`zoo.data.loader.training_loader`)."""
        return training_loader(self.recipe, self.model, self.dist, self.device, self.given.get("train"))

    def eval_dataset(self, split: str | None = None):
        """The evaluation dataset's ``split`` (default ``data.eval_split``), built once."""
        split = split or self.recipe.data.eval_split
        given = self.given.get("eval" if split == self.recipe.data.eval_split else "train")
        if given is not None and "eval" in self.given:  # a linear probe fits on the given training data
            return given
        if split not in self._eval_datasets:
            name = self.recipe.eval.dataset or self.recipe.data.dataset
            options = self.recipe.data.options if name == self.recipe.data.dataset else {}
            with recipe_key("data.options" if options else "eval.dataset"):
                self._eval_datasets[split] = create_dataset(name, split=split, **options)
        return self._eval_datasets[split]

    def plain_model(self) -> ContrastiveModel:
        """The model with ordinary full tensors: itself, or under FSDP rank 0's gathered copy
        (collective: every rank calls it; ``None`` on the others)."""
        return self.plain.refresh(self.model) if self.fsdp else self.model


def _device_and_processes(name: str) -> tuple[torch.device, DistInfo]:
    """The device ``run.device`` names, and this process's place among torchrun's (one GPU per rank)."""
    device = pick_device(name)
    dist = init_distributed(device.type)
    if device.type == "cuda" and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    return device, dist


def _objective(recipe: Recipe, model: ContrastiveModel, device: torch.device) -> torch.nn.Module:
    """The recipe's objective (``[objective]``), checked against the model."""
    factory = registry().get("objectives", recipe.objective.name).factory
    with recipe_key("objective.options"):
        objective = call_factory(f"objective {recipe.objective.name!r}", factory,
                                 **recipe.objective.options).to(device)
    if ObjectiveTraits.of(objective).needs_logit_bias and model.logit_bias is None:
        raise RecipeError(f"objective {recipe.objective.name!r} needs a learnable logit bias and the model has "
                          f"none: set model.logit_bias = -10.0 (the SigLIP paper's initialisation).")
    return objective
