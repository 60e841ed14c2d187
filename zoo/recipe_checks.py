"""The value rules of a recipe, checked after its keys and types: ranges, choices, devices, `[eval]`
and plain names. Each failure is a :class:`RecipeError` naming the key, its line and the fix.

Called by :func:`zoo.recipes.load_recipe`; the parser itself (keys, types, lines) lives in ``zoo.recipes``.
"""
from __future__ import annotations

import re
from typing import Any

from zoo.checks import short_repr
from zoo.errors import RecipeError
from zoo.recipes import Recipe, _where

_CHOICES = {"optim.schedule": ("cosine", "linear", "constant"), "run.precision": ("fp32", "bf16", "fp16"),
            "run.on_nonfinite": ("stop", "skip"), "eval.best_mode": ("auto", "max", "min")}
_POSITIVE = ("model.embed_dim", "data.batch_size", "data.prefetch_factor", "optim.lr", "optim.eps", "run.log_every",
             "run.keep_checkpoints")
_NON_NEGATIVE = ("data.num_workers", "optim.weight_decay", "optim.warmup_steps", "optim.grad_clip", "run.epochs",
                 "run.steps", "run.checkpoint_every", "run.eval_every", "optim.min_lr_ratio", "run.grad_cache_chunk",
                 "run.max_skips", "run.seed")
# (key, upper bound, why and what to do): upper bounds that are not a matter of taste
_AT_MOST = (("optim.lr", 10.0, "AdamW moves each weight by about lr per step; typical values are 1e-4 … 1e-2"),
            ("optim.eps", 1.0, "it only guards a division; typical values are 1e-8 … 1e-6"),
            ("optim.min_lr_ratio", 1.0, "the schedule decays from lr to lr × min_lr_ratio"),
            ("data.prefetch_factor", 64, "each loader worker holds that many batches in memory; 2 (the default) "
             "keeps a GPU fed"),
            ("run.seed", 2**32 - 1, "every generator (numpy's too) is seeded from it; pick a seed below 2**32"))
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")


def _get(recipe: Recipe, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(recipe, section), name)


def check_values(recipe: Recipe, lines, path) -> None:
    def fail(key: str, problem: str) -> None:
        raise RecipeError(f"{_where(lines, key, path)}: {key} {problem}")

    for key, choices in _CHOICES.items():
        if _get(recipe, key) not in choices:
            fail(key, f"= {short_repr(_get(recipe, key))}; valid: {', '.join(choices)}.")
    for key in _POSITIVE:
        if not _get(recipe, key) > 0:
            fail(key, f"must be > 0, got {_get(recipe, key)}.")
    for key in _NON_NEGATIVE:
        if _get(recipe, key) < 0:
            fail(key, f"must be ≥ 0, got {_get(recipe, key)}.")
    for key, high, why in _AT_MOST:
        if _get(recipe, key) > high:
            bound = high if isinstance(high, int) else f"{high:g}"
            fail(key, f"must be ≤ {bound}, got {short_repr(_get(recipe, key))}: {why}.")
    o, r = recipe.optim, recipe.run
    if o.lr * o.weight_decay >= 1:
        fail("optim.weight_decay", f"× optim.lr must be < 1 (AdamW multiplies the weights by 1 − lr × weight_decay "
                                   f"each step), got {o.weight_decay:g} × {o.lr:g}; lower weight_decay (typical "
                                   f"0.01 … 0.2).")
    if r.epochs == 0 and r.steps == 0:
        fail("run.epochs", "= 0 and run.steps = 0: nothing to train; set run.epochs ≥ 1 or run.steps ≥ 1.")
    if r.steps and o.warmup_steps > r.steps:
        fail("optim.warmup_steps", f"= {o.warmup_steps} is beyond the run's {r.steps} steps (run.steps); lower it "
                                   f"(e.g. {max(1, r.steps // 10)}) or train longer.")
    if not DEVICE.fullmatch(r.device):
        fail("run.device", f"= {short_repr(r.device)}; valid: auto, cpu, cuda, cuda:<index>, mps.")
    if not recipe.data.dataset:
        raise RecipeError(f"{path}: [data] needs dataset = \"<name>\" (see `zoo list datasets`).")
    if not recipe.model.towers and not recipe.model.init:
        raise RecipeError(f"{path}: [model] needs towers ([model.towers.<name>] encoder = …) or init = \"<catalog name>\".")
    for name, spec in recipe.model.towers.items():
        if not isinstance(spec, dict) or "encoder" not in spec:
            raise RecipeError(f"{_where(lines, f'model.towers.{name}', path)}: tower {name!r} needs "
                              f"encoder = \"<name>\" (see `zoo list encoders`).")
    if len(recipe.optim.betas) != 2 or not all(0 <= b < 1 for b in recipe.optim.betas):
        raise RecipeError(f"{_where(lines, 'optim.betas', path)}: optim.betas must be two numbers in [0, 1).")
    from zoo.evaluation.runner import eval_problems
    e = recipe.eval
    for key, problem in eval_problems(e.tasks, e.options, e.best_metric):
        fail(key, problem if problem.startswith("=") else f"— {problem}")
    _check_names(recipe, lines, path)


def _check_names(recipe: Recipe, lines, path) -> None:
    """run.name and tower keys become path components (runs/<name>, assets/<tower>): plain names only."""
    from zoo.hub.integrity import SAFE_KEY
    named = [("run.name", recipe.run.name)] if recipe.run.name else []
    named += [(f"model.towers.{k}", k) for k in recipe.model.towers]
    for key, name in named:
        if not SAFE_KEY.match(name) or ".." in name:
            raise RecipeError(f"{_where(lines, key, path)}: {key} "
                              f"= {name!r} is not a plain name (letters, digits, '_', '-', '.'; no '/', no '..'): it "
                              f"would write outside the run directory. Rename it (or use --run-dir for a location).")
