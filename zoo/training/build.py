"""Starting points for training: fresh towers, a catalog model with new towers, frozen parts."""
from __future__ import annotations

import torch
from torch import nn

from zoo.errors import RecipeError
from zoo.model import ContrastiveModel, ModelConfig, TowerConfig
from zoo.recipes import Recipe


def build_model(recipe: Recipe) -> ContrastiveModel:
    """From ``[model]``: fresh towers, or a catalog model (``init``) with any extra towers added."""
    m = recipe.model
    if not m.init:
        return ContrastiveModel(ModelConfig(
            towers={k: TowerConfig.from_spec(k, v) for k, v in m.towers.items()}, embed_dim=m.embed_dim,
            logit_scale=m.logit_scale, logit_bias=m.logit_bias))
    from zoo.hub.catalog import load
    base = load(m.init)
    clash = sorted(set(m.towers) & set(base.towers))
    if clash:
        raise RecipeError(f"model.towers {clash} already come from model.init = {m.init!r} (towers "
                          f"{list(base.towers)}); remove those tables to keep the pretrained towers, or give a new "
                          f"tower another name.")
    if m.towers:
        add_towers(base, {k: TowerConfig.from_spec(k, v) for k, v in m.towers.items()})
    if m.logit_bias is not None and base.logit_bias is None:
        base.logit_bias = nn.Parameter(torch.tensor(float(m.logit_bias), device=base.device))
        base.config.logit_bias = float(m.logit_bias)
    return base.train()


def add_towers(model: ContrastiveModel, towers: dict[str, TowerConfig]) -> None:
    """Add freshly initialised towers to ``model`` in place (the pretrained towers are not rebuilt)."""
    fresh = ContrastiveModel(ModelConfig(towers=towers, embed_dim=model.embed_dim))
    model.towers.update(fresh.towers.to(model.device))
    model.config.towers.update(towers)
    model.source = f"{model.source} + new towers {sorted(towers)}"


def apply_freeze(model: ContrastiveModel, recipe: Recipe) -> None:
    """``model.freeze`` then ``model.unfreeze`` (parameter-name prefixes); fully frozen parts run in eval mode."""
    for key, flag in (("freeze", False), ("unfreeze", True)):
        for prefix in getattr(recipe.model, key):
            hits = [p for n, p in model.named_parameters() if n == prefix or n.startswith(prefix + ".")]
            if not hits:
                raise RecipeError(f"model.{key}: no parameter starts with {prefix!r}; tower prefixes are "
                                  f"{', '.join('towers.' + k for k in model.towers)} (parameter names: "
                                  f"model.named_parameters()).")
            for p in hits:
                p.requires_grad_(flag)
    model.logit_scale.requires_grad_(recipe.model.learn_logit_scale and model.logit_scale.requires_grad)
    if recipe.model.freeze:
        keep_locked_in_eval(model.towers)


def keep_locked_in_eval(module: nn.Module) -> None:
    """The largest submodules whose parameters are all frozen stay in eval mode (as LiT's locked tower):
    no dropout noise, no batch-norm statistics drift, whatever ``model.train()`` says."""
    params = list(module.parameters())
    if params and not any(p.requires_grad for p in params):
        module.eval()
        module.register_forward_pre_hook(_to_eval)
        return
    for child in module.children():
        keep_locked_in_eval(child)


def _to_eval(module: nn.Module, args) -> None:
    if module.training:
        module.eval()


def prepare_encoders(model: ContrastiveModel, run) -> None:
    """``run.grad_checkpointing`` and ``run.compile`` applied to every tower's encoder."""
    import logging
    for key, tower in model.towers.items():
        enc = tower.encoder
        if run.grad_checkpointing:
            if hasattr(enc, "set_grad_checkpointing"):
                enc.set_grad_checkpointing(True)
            else:
                logging.getLogger("zoo.train").warning("tower %r (%s) has no gradient checkpointing; ignored",
                                                       key, tower.config.encoder)
        if run.compile:
            enc.compile()  # in place: parameter names (and checkpoints) stay the same
