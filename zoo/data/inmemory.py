"""Training on objects: an in-memory dataset and an already built model instead of registered names.

    model = zoo.load("local-dir:runs/digits-clip")
    zoo.train("recipes/digits-clip.toml", dataset=rows, eval_dataset=test_rows, model=model)

The recipe still says how to train (pairs, objective, optim, run, eval); the objects replace
``[data] dataset`` / ``options`` and ``[model]``'s towers, ``init`` and temperature (``freeze``,
``unfreeze`` and ``learn_logit_scale`` still apply, and the model is trained in place). The run's
``recipe.toml`` records what was used: ``dataset = "(in memory: ListDataset)"``, ``init = "(in
memory: <model.source>)"``. ``recipe`` may also be a dict with the recipe's tables.
"""
from __future__ import annotations

from typing import Any

from zoo.data.datasets import as_dataset
from zoo.errors import RecipeError
from zoo.recipes import Recipe, _normalise_overrides, load_recipe


def in_memory_name(obj: Any) -> str:
    return f"(in memory: {type(obj).__name__})"


def recipe_with_objects(recipe, overrides, *, dataset=None, eval_dataset=None, model=None) -> Recipe:
    """The validated recipe, with the names of the objects that replace its dataset and model."""
    extra: dict[str, Any] = {}
    if dataset is not None:
        extra.update({"data.dataset": in_memory_name(dataset), "data.options": {}})
    if eval_dataset is not None:
        extra["eval.dataset"] = in_memory_name(eval_dataset)
    if model is not None:
        from zoo.model import ContrastiveModel
        if not isinstance(model, ContrastiveModel):
            raise RecipeError(f"model= must be a zoo ContrastiveModel (zoo.load(…) or zoo.create_model(…)), got "
                              f"{type(model).__name__}.")
        extra.update({"model.towers": {}, "model.init": f"(in memory: {model.source})",
                      "model.embed_dim": model.embed_dim})
    r = load_recipe(recipe, {**_normalise_overrides(overrides), **extra})
    if dataset is not None and r.eval.tasks and eval_dataset is None and r.eval.dataset == "":
        raise RecipeError(f"[eval] tasks {r.eval.tasks} need data to evaluate on: pass eval_dataset=<held-out rows>, "
                          f"set eval.dataset = \"<registered name>\", or set eval.tasks = [] to train only.")
    return r


def datasets(dataset, eval_dataset) -> dict[str, Any]:
    """``{"train": Dataset, "eval": Dataset}`` for the objects given (lists of dicts wrapped)."""
    out = {}
    if dataset is not None:
        out["train"] = as_dataset(dataset, "dataset")
    if eval_dataset is not None:
        out["eval"] = as_dataset(eval_dataset, "eval_dataset")
    return out
