"""The trainer: a recipe in, a run directory out. Read it top to bottom.

    result = zoo.train("recipes/digits-clip.toml", overrides={"optim.lr": 3e-4})
    result.run_dir   # config.json, model.safetensors, recipe.toml, README.md, metrics.jsonl, plots/
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import create_objective
from .batching import Batch, Collator
from .checkpoint import complete_checkpoints, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .data import EpochSampler, Indexed, create_dataset
from .errors import DataError, RecipeError, ZooError
from .model import ContrastiveModel, ModelConfig, TowerConfig
from .plugins import registry
from .recipes import Recipe, load_recipe
from .utils import call_factory, move_to

log = logging.getLogger("zoo.train")


class NonFiniteLossError(ZooError):
    """The loss became NaN or inf; the weights were not updated."""


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, Any]
    model: ContrastiveModel | None = field(default=None, repr=False)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RecipeError(f"run.device = {name!r} but no CUDA device is available; use 'cpu' or 'auto'.")
    return torch.device(name)


def build_model(recipe: Recipe) -> ContrastiveModel:
    """From ``[model]``: fresh towers, or a catalog model (``init``) with any extra towers added."""
    m = recipe.model
    if not m.init:
        return ContrastiveModel(ModelConfig(
            towers={k: TowerConfig.from_spec(k, v) for k, v in m.towers.items()}, embed_dim=m.embed_dim,
            logit_scale=m.logit_scale, logit_bias=m.logit_bias))
    from .catalog import load
    base = load(m.init)
    extra = {k: v for k, v in m.towers.items() if k not in base.towers}
    if not extra:
        return base.train()
    config = ModelConfig(towers={**base.config.towers, **{k: TowerConfig.from_spec(k, v) for k, v in extra.items()}},
                         embed_dim=base.embed_dim, logit_scale=base.config.logit_scale, logit_bias=base.config.logit_bias)
    model = ContrastiveModel(config)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.split(".")[1] in extra for k in missing), (missing, unexpected)
    model.source = f"{base.source} + new towers {sorted(extra)}"
    return model


def apply_freeze(model: ContrastiveModel, recipe: Recipe) -> None:
    names = [n for n, _ in model.named_parameters()]
    for prefix in recipe.model.freeze:
        hits = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            raise RecipeError(f"model.freeze: no parameter starts with {prefix!r}; tower prefixes are "
                              f"{', '.join('towers.' + k for k in model.towers)}.")
        for n, p in model.named_parameters():
            if n in hits:
                p.requires_grad_(False)
    model.logit_scale.requires_grad_(recipe.model.learn_logit_scale and model.logit_scale.requires_grad)


def make_optimizer(model: ContrastiveModel, recipe: Recipe) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms, gains and the temperature (as open_clip)."""
    o = recipe.optim
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.dim() < 2 or "logit_" in n or "norm" in n or "bn" in n else decay).append(p)
    if not decay and not no_decay:
        raise RecipeError("every parameter is frozen (model.freeze); nothing to train.")
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=o.lr, betas=tuple(o.betas), eps=o.eps)


def lr_lambda(recipe: Recipe, total: int):
    o = recipe.optim

    def f(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "constant":
            return 1.0
        t = min(1.0, (step - o.warmup_steps) / max(1, total - o.warmup_steps))
        shape = 0.5 * (1 + math.cos(math.pi * t)) if o.schedule == "cosine" else 1 - t
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * shape

    return f


class Trainer:
    def __init__(self, recipe: Recipe, *, run_dir: str | Path | None = None, resume: bool = False,
                 progress: bool | None = None):
        self.recipe, r = recipe, recipe.run
        name = r.name or (Path(recipe.path).stem if recipe.path else "run")
        self.run_dir = Path(run_dir) if run_dir else Path(r.output_dir) / name
        self.progress = r.progress if progress is None else progress
        seed_everything(r.seed)
        if r.deterministic:
            torch.use_deterministic_algorithms(True)
        self.device = pick_device(r.device)
        self.model = build_model(recipe).to(self.device).train()
        apply_freeze(self.model, recipe)
        self.objective = call_factory(f"objective {recipe.objective.name!r}", _objective_factory(recipe),
                                      **recipe.objective.options).to(self.device)
        self.loader, self.sampler, self.collator = self._make_loader()
        self.steps_per_epoch = len(self.loader)
        self.total_steps = r.steps or r.epochs * self.steps_per_epoch
        self.optimizer = make_optimizer(self.model, recipe)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(recipe, self.total_steps))
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.stop_requested: str | None = None   # set by SIGINT/SIGTERM or request_stop()
        self.stop_at_step: int | None = None      # stop (with a checkpoint) once this step is reached
        self.ckpt_root = self.run_dir / "checkpoints"
        if resume:
            self._resume()

    # -- data ------------------------------------------------------------------------------
    def _make_loader(self):
        d, r = self.recipe.data, self.recipe.run
        dataset = create_dataset(d.dataset, split=d.split, **d.options)
        if d.drop_last and len(dataset) < d.batch_size:
            raise DataError(f"data.batch_size = {d.batch_size} is larger than dataset {d.dataset!r} "
                            f"({len(dataset)} rows in split {d.split!r}); lower the batch size.")
        strategy = call_factory(f"pair strategy {self.recipe.pairs.strategy!r}",
                                registry().get("pair_strategies", self.recipe.pairs.strategy).factory,
                                **self.recipe.pairs.options)
        collator = Collator(self.model, strategy, dataset, r.seed)
        sampler = EpochSampler(len(dataset), r.seed, shuffle=d.shuffle)
        loader = DataLoader(Indexed(dataset), batch_size=d.batch_size, sampler=sampler, collate_fn=collator,
                            num_workers=d.num_workers, drop_last=d.drop_last, pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(r.seed))  # keeps the global RNG untouched
        if len(loader) == 0:
            raise DataError(f"dataset {d.dataset!r} yields no full batch of {d.batch_size}.")
        self.dataset = dataset
        return loader, sampler, collator

    def batches(self):
        """Yield ``(epoch, batch)`` from the current position to the end of training."""
        while self.step < self.total_steps:
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch, self.recipe.data.batch_size)
            self.collator.epoch = self.epoch
            for batch in self.loader:
                yield batch
                if self.step >= self.total_steps:
                    return
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    # -- one step ----------------------------------------------------------------------------
    def embed(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``{view: (B, D)}`` plus ``{"view/level": (B, D)}`` for levels the objective asks for."""
        wanted = set(getattr(self.objective, "required_views", ()) or ())
        out = {}
        for view, (tower, data) in batch.views.items():
            levels = {k.split("/", 1)[1] for k in wanted if k.startswith(view + "/")}
            if levels:
                per_level = self.model.encode_levels(tower, data)
                out[view] = per_level.pop("final")
                out.update({f"{view}/{lv}": z for lv, z in per_level.items() if lv in levels})
            else:
                out[view] = self.model.encode(tower, data)
        return out

    def loss(self, batch: Batch) -> torch.Tensor:
        emb = self.embed(batch)
        labels = move_to(batch.labels, self.device)
        mask = move_to(batch.mask, self.device)
        return self.objective(emb, logit_scale=self.model.scale(), logit_bias=self.model.logit_bias,
                              labels=labels or None, mask=mask)

    def train_step(self, batch: Batch) -> float:
        with self._autocast():
            loss = self.loss(batch)
        if not torch.isfinite(loss):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(f"step {self.step}: objective {self.recipe.objective.name!r} returned "
                                     f"{loss.item()}; the weights were not updated. Lower optim.lr, set "
                                     f"optim.grad_clip, or check the data.")
        loss.backward()
        if self.recipe.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.model.logit_scale.clamp_(max=math.log(self.model.config.max_logit_scale))
        return loss.item()

    def _autocast(self):
        p = self.recipe.run.precision
        if p == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if p == "bf16" else torch.float16)

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        with _stop_on_signals(self):
            return self._fit()

    def _fit(self) -> TrainResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        metrics_file = self.run_dir / "metrics.jsonl"
        _truncate_metrics(metrics_file, self.step)
        log.info("training %s for %d steps (%d per epoch) on %s → %s", self.recipe.data.dataset,
                 self.total_steps, self.steps_per_epoch, self.device, self.run_dir)
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.progress, desc=self.run_dir.name,
                   unit="step", dynamic_ncols=True)
        window_t, window_n, last = time.perf_counter(), 0, {}
        with open(metrics_file, "a", encoding="utf-8") as mf:
            for batch in self.batches():
                loss = self.train_step(batch)
                self.step, self.batch_in_epoch = self.step + 1, self.batch_in_epoch + 1
                window_n += batch.size
                bar.update(1)
                if self.step % self.recipe.run.log_every == 0 or self.step == self.total_steps:
                    dt = time.perf_counter() - window_t
                    last = {"step": self.step, "epoch": self.epoch, "loss": loss,
                            "lr": self.scheduler.get_last_lr()[0], "logit_scale": self.model.scale().item(),
                            "samples_per_s": window_n / dt if dt > 0 else float("nan")}
                    mf.write(json.dumps(last) + "\n")
                    mf.flush()
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{last['lr']:.2e}")
                    window_t, window_n = time.perf_counter(), 0
                every = self.recipe.run.checkpoint_every
                if every and self.step % every == 0 and self.step < self.total_steps:
                    self.save_checkpoint()
                if self.step == self.stop_at_step:
                    self.stop_requested = f"stop_at_step={self.step}"
                if self.stop_requested:
                    break
        bar.close()
        if self.stop_requested and self.step < self.total_steps:
            path = self.save_checkpoint()
            log.warning("stopped at step %d (%s); checkpoint %s. Resume with: zoo train %s --resume %s",
                        self.step, self.stop_requested, path, self.recipe.path, self.run_dir)
            return TrainResult(self.run_dir, {"stopped_at": self.step, "checkpoint": str(path)}, self.model)
        return self._finish(last)

    def request_stop(self, reason: str = "requested") -> None:
        """Finish the current step, write a checkpoint and return (SIGINT/SIGTERM call this)."""
        self.stop_requested = reason

    def _finish(self, last: dict[str, Any]) -> TrainResult:
        self.save_checkpoint()
        metrics = {"final_loss": last.get("loss"), "steps": self.step, "samples_per_s": last.get("samples_per_s")}
        from .plots import plot_training
        plots = plot_training(self.run_dir / "metrics.jsonl", self.run_dir / "plots")
        self.model.eval()
        self.model.save_pretrained(self.run_dir, recipe_text=self.recipe.to_toml(), metrics=metrics)
        (self.run_dir / "results.json").write_text(json.dumps(metrics, indent=2, default=str))
        log.info("done: %d steps, final loss %.4f; wrote %s and %s", self.step, metrics["final_loss"] or float("nan"),
                 self.run_dir, ", ".join(str(p) for p in plots))
        return TrainResult(self.run_dir, metrics, self.model)

    # -- checkpoints -----------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        training = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "rng": rng_state()}
        meta = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "total_steps": self.total_steps}
        return save_checkpoint(self.ckpt_root, self.step, self.model, training, meta,
                               keep=self.recipe.run.keep_checkpoints)

    def _resume(self) -> None:
        found = complete_checkpoints(self.ckpt_root)
        if not found:
            log.warning("no complete checkpoint in %s; starting from step 0", self.ckpt_root)
            return
        training, meta = load_checkpoint(found[-1], self.model)
        self.optimizer.load_state_dict(training["optimizer"])
        self.scheduler.load_state_dict(training["scheduler"])
        set_rng_state(training["rng"])
        self.step, self.epoch, self.batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        if self.batch_in_epoch >= self.steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        log.info("resumed from %s at step %d (epoch %d, batch %d)", found[-1], self.step, self.epoch,
                 self.batch_in_epoch)


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer):
    """SIGINT / SIGTERM: save a checkpoint at the end of the current step and exit cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    def handler(signum, frame):
        trainer.request_stop(signal.Signals(signum).name)
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _objective_factory(recipe: Recipe):
    return registry().get("objectives", recipe.objective.name).factory


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop logged lines past the checkpoint's step (they will be logged again)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    path.write_text("".join(k + "\n" for k in keep))


def train(recipe: str | Path | Recipe, overrides: dict[str, Any] | list[str] | None = None, *,
          resume: bool = False, run_dir: str | Path | None = None, progress: bool | None = None) -> TrainResult:
    """Train from a recipe; ``resume=True`` continues from the run directory's last checkpoint."""
    recipe = load_recipe(recipe, overrides)
    return Trainer(recipe, run_dir=run_dir, resume=resume, progress=progress).fit()
