"""The trainer: a recipe in, a run directory out. Read it top to bottom.

    result = zoo.train("recipes/digits-clip.toml", overrides={"optim.lr": 3e-4})
    result.run_dir   # config.json, model.safetensors, recipe.toml, README.md, metrics.jsonl, plots/
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from zoo.checks import call_factory, recipe_key
from zoo.data.batches import move_to
from zoo.data.collate import Batch
from zoo.data.datasets import create_dataset
from zoo.data.inmemory import datasets, recipe_with_objects
from zoo.data.loader import training_loader
from zoo.errors import RecipeError, ZooError
from zoo.evaluation.tasks import check_metric_fields
from zoo.logs import progress_logging
from zoo.model import ContrastiveModel
from zoo.plugins import registry
from zoo.protocols import ObjectiveTraits
from zoo.recipes import Recipe
from zoo.training.build import apply_freeze, build_model, prepare_encoders
from zoo.training.checkpointing import Checkpointing, logged_eval, repair_metrics
from zoo.training.checkpoints import seed_everything
from zoo.training.distributed import gather_all, init_distributed, local_loss, shutdown, wrap
from zoo.training.fsdp import PlainCopy, average_replicated_grads, shard
from zoo.training.gradcache import grad_cache_backward
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

log = logging.getLogger("zoo.train")


class NonFiniteLossError(ZooError):
    """The loss became NaN or inf; the weights were not updated."""


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, Any]
    model: ContrastiveModel | None = field(default=None, repr=False)


class _Encode(torch.nn.Module):
    """What DDP wraps: encodes the views and reads the temperature inside ``forward``."""

    def __init__(self, model: ContrastiveModel):
        super().__init__()
        self.model = model

    def forward(self, views, levels):
        out = self.model(views, levels=levels)
        out["__scale__"] = self.model.scale().reshape(1)
        if self.model.logit_bias is not None:
            out["__bias__"] = self.model.logit_bias.reshape(1)
        return out


class Trainer(Checkpointing):
    def __init__(self, recipe: Recipe, *, run_dir: str | Path | None = None, resume: bool = False,
                 overwrite: bool = False, progress: bool | None = None, dataset=None, eval_dataset=None,
                 model: ContrastiveModel | None = None):
        self.recipe, r = recipe, recipe.run
        self.given = datasets(dataset, eval_dataset)  # in-memory data replacing [data] / [eval] names
        name = r.name or (Path(recipe.path).stem if recipe.path else "run")
        self.run_dir = Path(run_dir) if run_dir else Path(r.output_dir) / name
        self.progress = r.progress if progress is None else progress
        self.device = pick_device(r.device)
        self.dist = init_distributed(self.device.type)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        # the run directory is this run's (checked, locked, recipe stored) before anything is built
        self.claim = claim_run_dir(self.run_dir, recipe, resume=resume, overwrite=overwrite) if self.dist.main else None
        try:
            self._build(recipe, resume, model)
        except BaseException:
            self.close()  # a recipe that fails to build leaves the directory free for the next try
            raise

    def _build(self, recipe: Recipe, resume: bool, model: ContrastiveModel | None) -> None:
        r = recipe.run
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
        self.plain = PlainCopy(self.model, self.dist.main) if self.fsdp else None  # rank 0's copy for eval/saving
        if self.fsdp:
            shard(self.model, self.device, self.dist.world)
        self.wrapped = _Encode(self.model) if self.fsdp else wrap(_Encode(self.model), self.dist, self.device)
        with recipe_key("objective.options"):
            self.objective = call_factory(f"objective {recipe.objective.name!r}", _objective_factory(recipe),
                                          **recipe.objective.options).to(self.device)
        if ObjectiveTraits.of(self.objective).needs_logit_bias and self.model.logit_bias is None:
            raise RecipeError(f"objective {recipe.objective.name!r} needs a learnable logit bias and the model has "
                              f"none: set model.logit_bias = -10.0 (the SigLIP paper's initialisation).")
        self.loader, self.sampler, self.collator = self._make_loader()
        if recipe.eval.tasks and self.dist.main:  # the evaluation split is built and checked now, not after training
            check_metric_fields(recipe.eval.best_metric, self.eval_dataset())
        self.steps_per_epoch = len(self.loader)
        self.total_steps = r.steps or r.epochs * self.steps_per_epoch
        self.optimizer = make_optimizer(self.model, recipe)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(recipe, self.total_steps))
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.stop_requested: str | None = None   # set by SIGINT/SIGTERM or request_stop()
        self.stop_at_step: int | None = None      # stop (with a checkpoint) once this step is reached
        self.best = float("-inf")                 # best value of eval.best_metric so far
        self.skipped = 0                          # batches skipped for a NaN/inf loss (run.on_nonfinite = "skip")
        self.ckpt_root, self._last = self.run_dir / "checkpoints", {}
        if resume:
            self._resume()

    # -- data ------------------------------------------------------------------------------
    def _make_loader(self):
        """The training split's loader (built by :func:`zoo.data.loader.training_loader`)."""
        self.dataset, loader, sampler, collator = training_loader(self.recipe, self.model, self.dist, self.device,
                                                                  self.given.get("train"))
        return loader, sampler, collator

    def batches(self):
        """Yield ``(epoch, batch)`` from the current position to the end of training."""
        while self.step < self.total_steps:
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
            self.collator.epoch = self.epoch
            if hasattr(self.dataset, "set_epoch"):  # e.g. captions re-drawn per epoch
                self.dataset.set_epoch(self.epoch)
            for batch in self.loader:
                yield batch
                if self.step >= self.total_steps:
                    return
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    # -- one step ----------------------------------------------------------------------------
    def encode(self, views) -> dict[str, torch.Tensor]:
        """``{view: (b, D)}`` plus ``{"view/level": (b, D)}`` for the levels the objective asks for,
        and ``"__scale__"``/``"__bias__"`` (read inside the DDP forward, as DDP requires)."""
        wanted = ObjectiveTraits.of(self.objective).required_views
        levels = {v: {k.split("/", 1)[1] for k in wanted if k.startswith(v + "/")} for v in views}
        return self.wrapped(views, levels)

    def objective_loss(self, emb: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        """The objective on the global batch. Under torchrun: the objective's local path when it has
        one (its own rows against the gathered columns), else on embeddings all-gathered with gradients."""
        emb = dict(emb)
        scale, bias = emb.pop("__scale__"), emb.pop("__bias__", None)
        self._scale = scale.detach()  # logged; read here because FSDP keeps the parameter sharded outside forward
        labels, mask = move_to(batch.labels, self.device), move_to(batch.mask, self.device)
        kw = {"logit_scale": scale.reshape(()), "logit_bias": None if bias is None else bias.reshape(())}
        if self.dist.enabled and ObjectiveTraits.of(self.objective).forward_local is not None:
            return local_loss(self.objective, emb, labels, mask, self.dist, **kw)
        if self.dist.enabled:
            emb, labels, mask = gather_all(emb, labels, mask)
        return self.objective(emb, labels=labels or None, mask=mask, **kw)

    def loss(self, batch: Batch) -> torch.Tensor:
        return self.objective_loss(self.encode(batch.views), batch)

    def forward_backward(self, batch: Batch) -> torch.Tensor:
        """Loss and gradients for one batch: directly, or through GradCache's chunks."""
        chunk = self.recipe.run.grad_cache_chunk
        with self._autocast():
            if not chunk or chunk >= batch.size:
                loss = self.loss(batch)
                self._check_finite(loss)
                loss.backward()
                return loss.detach()
            return grad_cache_backward(self.encode, batch.views, lambda emb: self._check_finite(
                self.objective_loss(emb, batch)), chunk, self.device,
                {k: registry().modality(t.config.modality) for k, t in self.model.towers.items()})

    def _check_finite(self, loss: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(loss):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(f"step {self.step}: objective {self.recipe.objective.name!r} returned "
                                     f"{loss.item()}; the weights were not updated. Lower optim.lr, set "
                                     f"optim.grad_clip, or check the data.")
        return loss

    def train_step(self, batch: Batch) -> float:
        try:
            loss = self.forward_backward(batch)
        except NonFiniteLossError as exc:
            return self._skip_or_raise(exc)
        if self.fsdp:
            average_replicated_grads(self.model)
        if self.recipe.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.model.logit_scale.clamp_(max=math.log(self.model.config.max_logit_scale))
        return loss.item()

    def _skip_or_raise(self, exc: NonFiniteLossError) -> float:
        """``run.on_nonfinite = "skip"``: the batch is consumed, the weights and optimizer untouched,
        the schedule advances; past ``run.max_skips`` skipped batches training stops all the same.
        Every rank sees the same (global) loss, so every rank skips the same step."""
        r = self.recipe.run
        if r.on_nonfinite != "skip":
            raise exc
        self.skipped += 1
        if self.skipped > r.max_skips:
            raise NonFiniteLossError(f"{exc} {self.skipped} batches skipped, more than run.max_skips = "
                                     f"{r.max_skips}; training stops.") from exc
        log.warning("step %d: non-finite loss, batch skipped (%d of at most %d)", self.step, self.skipped,
                    r.max_skips)
        self.scheduler.step()
        return float("nan")

    def _autocast(self):
        p = self.recipe.run.precision
        if p == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if p == "bf16" else torch.float16)

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        try:
            with stop_on_signals(self), progress_logging():
                return self._fit()
        finally:
            self.close()

    def close(self) -> None:  # release the run directory's lock (fit does, when it returns or fails)
        if self.claim is not None:
            self.claim.release()

    def _fit(self) -> TrainResult:
        main = self.dist.main
        metrics_path = self.run_dir / "metrics.jsonl" if main else Path(os.devnull)
        done = read_results(self.run_dir) if self.step >= self.total_steps else None
        if done is not None:  # resuming a finished run: nothing to do, nothing rewritten
            log.info("the run in %s already finished (step %d of %d); nothing to do. Raise run.steps / run.epochs "
                     "(--set) to train further.", self.run_dir, self.step, self.total_steps)
            return TrainResult(self.run_dir, done, self.model)
        if main:
            repair_metrics(metrics_path, self.step)
        log.info("training %s for %d steps (%d per epoch) on %s → %s", self.recipe.data.dataset,
                 self.total_steps, self.steps_per_epoch, self.device, self.run_dir)
        self._bar = tqdm(total=self.total_steps, initial=self.step, disable=not (self.progress and main),
                         desc=self.run_dir.name, unit="step", dynamic_ncols=True)
        self._window = (time.perf_counter(), 0)
        with open(metrics_path, "a", encoding="utf-8") as self._metrics:
            for batch in self.batches():
                loss = self.train_step(batch)
                self.step, self.batch_in_epoch = self.step + 1, self.batch_in_epoch + 1
                self._after_step(loss, batch.size)
                if self.stop_requested:
                    break
            self._bar.close()
            if self.stop_requested and self.step < self.total_steps:
                return self._stopped()
            evaluation = logged_eval(self.run_dir / "metrics.jsonl", self.step)  # killed after it: not again
            if evaluation is None:
                self.save_checkpoint()  # the trained weights are on disk before the final evaluation runs
                evaluation = self.run_eval()
        return self._finish(evaluation)

    def _after_step(self, loss: float, batch_size: int) -> None:
        """Progress, logging, periodic checkpoints and evaluation after one optimizer step."""
        r = self.recipe.run
        t0, n = self._window
        self._window = (t0, n + batch_size)
        self._bar.update(1)
        if self.step % r.log_every == 0 or self.step == self.total_steps:
            dt = time.perf_counter() - t0
            self._last = {"step": self.step, "epoch": self.epoch, "loss": loss,
                          "lr": self.scheduler.get_last_lr()[0], "logit_scale": self._scale.item(),
                          "samples_per_s": (n + batch_size) / dt if dt > 0 else float("nan"), "skipped": self.skipped}
            self._log(self._last)
            self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self._last['lr']:.2e}")
            self._window = (time.perf_counter(), 0)
        if r.eval_every and self.step % r.eval_every == 0 and self.step < self.total_steps:
            self.run_eval()  # before the checkpoint: a resume from it neither repeats nor loses this evaluation
        if r.checkpoint_every and self.step % r.checkpoint_every == 0 and self.step < self.total_steps:
            self.save_checkpoint()
        if self.step == self.stop_at_step:
            self.stop_requested = f"stop_at_step={self.step}"

    def _stopped(self) -> TrainResult:
        path = self.save_checkpoint()
        log.warning("stopped at step %d (%s); checkpoint %s. Resume with: zoo train --resume %s",
                    self.step, self.stop_requested, path, self.run_dir)
        return TrainResult(self.run_dir, {"stopped_at": self.step, "checkpoint": str(path)}, self.model)

    def _log(self, record: dict[str, Any]) -> None:
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()

    def run_eval(self) -> dict[str, float]:
        """Evaluate on the eval split (``[eval]``), log it, and keep the best checkpoint."""
        e = self.recipe.eval
        if not e.tasks:
            return {}
        model = self.plain_model()  # collective under FSDP
        if not self.dist.main:
            return {}
        from zoo.evaluation.tasks import best_mode, format_table, needs_train, run_tasks
        results = run_tasks(model, self.eval_dataset(), e.tasks, e.options,
                            train_dataset=self.eval_dataset(split=self.recipe.data.split)
                            if needs_train(e.tasks) else None)
        self._log({"step": self.step, "eval": results})
        log.info("step %d evaluation:\n%s", self.step, format_table(results))
        if e.best_metric:
            if e.best_metric not in results:
                raise RecipeError(f"eval.best_metric = {e.best_metric!r} is not among the metrics: {sorted(results)}.")
            sign = 1.0 if best_mode(e.best_metric, e.best_mode) == "max" else -1.0  # self.best holds sign × value
            if sign * results[e.best_metric] > self.best:
                self.best = sign * results[e.best_metric]
                with writing(self.run_dir / "best"):
                    model.save_pretrained(self.run_dir / "best", recipe_text=self.recipe.to_toml(),
                                          metrics={"step": self.step, **results})
        return results

    def eval_dataset(self, split: str | None = None):
        """The evaluation dataset's ``split`` (default ``data.eval_split``), built once."""
        split = split or self.recipe.data.eval_split
        given = self.given.get("eval" if split == self.recipe.data.eval_split else "train")
        if given is not None and "eval" in self.given:  # a linear probe fits on the given training data
            return given
        cache = self.__dict__.setdefault("_eval_ds", {})
        if split not in cache:
            name = self.recipe.eval.dataset or self.recipe.data.dataset
            options = self.recipe.data.options if name == self.recipe.data.dataset else {}
            with recipe_key("data.options" if options else "eval.dataset"):
                cache[split] = create_dataset(name, split=split, **options)
        return cache[split]

    def request_stop(self, reason: str = "requested") -> None:
        """Finish the current step, write a checkpoint and return (SIGINT/SIGTERM call this)."""
        self.stop_requested = reason

    def plain_model(self) -> ContrastiveModel:
        """The model with ordinary full tensors: itself, or under FSDP rank 0's gathered copy
        (collective: every rank calls it; ``None`` on the others)."""
        return self.plain.refresh(self.model) if self.fsdp else self.model

    def _finish(self, evaluation: dict[str, float]) -> TrainResult:
        model = self.plain_model()
        if not self.dist.main:
            return TrainResult(self.run_dir, {"steps": self.step, "rank": self.dist.rank}, self.model)
        last = self._last
        metrics = {"final_loss": last.get("loss"), "steps": self.step, "samples_per_s": last.get("samples_per_s"),
                   "skipped_batches": self.skipped,
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
        log.info("done: %d steps, final loss %.4f; wrote %s\npictures: %s", self.step,
                 metrics["final_loss"] or float("nan"), self.run_dir, ", ".join(str(p) for p in plots))
        return TrainResult(self.run_dir, metrics, model)


def _objective_factory(recipe: Recipe):
    return registry().get("objectives", recipe.objective.name).factory


def train(recipe: str | Path | Recipe | dict | None, overrides: dict[str, Any] | list[str] | None = None, *,
          resume: bool = False, run_dir: str | Path | None = None, overwrite: bool = False,
          progress: bool | None = None, dataset=None, eval_dataset=None,
          model: ContrastiveModel | None = None) -> TrainResult:
    """Train from a recipe; ``resume=True`` continues from the run directory's last checkpoint (``recipe``
    may then be ``None``: the run's stored ``recipe.toml``); ``overwrite=True`` deletes a previous run there.
    ``dataset`` / ``eval_dataset`` (a Dataset or a list of dicts) and ``model`` (a ContrastiveModel,
    trained in place) replace the recipe's registered names: see :mod:`zoo.data.inmemory`."""
    recipe = stored_recipe(run_dir) if recipe is None and resume else recipe
    recipe = recipe_with_objects(recipe, overrides, dataset=dataset, eval_dataset=eval_dataset, model=model)
    trainer = Trainer(recipe, run_dir=run_dir, resume=resume, overwrite=overwrite, progress=progress,
                      dataset=dataset, eval_dataset=eval_dataset, model=model)
    result = trainer.fit()
    shutdown(trainer.dist)  # under torchrun: leave the process group together (no-op for one process)
    return result
