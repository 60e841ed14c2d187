"""Optimizer and learning-rate schedule built from a recipe's ``[optim]``."""
from __future__ import annotations

import math

import torch

from zoo.errors import RecipeError
from zoo.model import ContrastiveModel
from zoo.recipes import Recipe


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
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                             **({"fused": True} if can_fuse(decay + no_decay) else {}))


def can_fuse(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused AdamW kernel takes these parameters: plain float tensors, all on CPU or all on
    one CUDA device (not FSDP's DTensor shards). On CPU torch otherwise loops over the tensors one op at a
    time: for open_clip's text tower (a 49,408-row token embedding) the step is ~8× slower that way and
    was ~40 % of a CPU training step (benchmarks/train_vs_open_clip.py)."""
    devices = {p.device for p in params}
    return (len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda")
            and all(type(p) is torch.nn.Parameter and p.is_floating_point() for p in params))


def lr_lambda(recipe: Recipe, total: int):
    """The schedule's multiplier of ``optim.lr`` at each step of a ``total``-step run."""
    o = recipe.optim
    if o.warmup_steps > total:
        raise RecipeError(f"optim.warmup_steps = {o.warmup_steps} is beyond the run's {total} steps "
                          f"(run.epochs × batches per epoch, or run.steps): the learning rate would never reach "
                          f"optim.lr. Lower it (e.g. {max(1, total // 10)}) or train longer.")

    def f(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "constant":
            return 1.0
        t = min(1.0, (step - o.warmup_steps) / max(1, total - o.warmup_steps))
        shape = 0.5 * (1 + math.cos(math.pi * t)) if o.schedule == "cosine" else 1 - t
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * shape

    return f
