"""Starting points for training: fresh towers, a catalog model with new towers, frozen parts."""
from __future__ import annotations

from .errors import RecipeError
from .model import ContrastiveModel, ModelConfig, TowerConfig
from .recipes import Recipe


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
