"""zoo: a plugin-based multimodal contrastive model zoo.

Public API (the contract; README.md documents it)::

    zoo.hookimpl
    zoo.list_modalities() / list_encoders(modality=None) / list_augmentations(modality=None)
    zoo.list_pair_strategies() / list_objectives() / list_datasets() / list_models(pattern=None)
    zoo.create_encoder(modality, name, **kw) / create_objective(name, **kw) / create_model(towers, embed_dim)
    zoo.load(name, *, pretrained=True, device=None, dtype=None)
    model.encode(modality, inputs, *, batch_size=32, normalize=True, progress=False, device=None, prompt_name=None)
    model.similarity(a, b, *, scaled=False)
    zoo.train(recipe, overrides=None, *, dataset=None, eval_dataset=None, model=None) -> TrainResult
    zoo.evaluate(model, dataset, task="zero_shot", *, split="test", match="auto", label=None)
"""
from __future__ import annotations

__version__ = "0.1.0"

from zoo import _moved

_moved.install()  # the flat layout's import paths (zoo.pairs, zoo.trainer, …) keep working, deprecated

from zoo.errors import (  # noqa: F401
    CheckpointError,
    DataError,
    PluginError,
    RecipeError,
    ShapeError,
    TrainingInterrupted,
    UnknownNameError,
    ZooError,
)
from zoo.hookspecs import hookimpl  # noqa: F401
from zoo.plugins import get_plugin_manager, register_plugin, registry, unregister_plugin  # noqa: F401


def list_modalities() -> list[str]:
    return registry().names("modalities")


def list_encoders(modality: str | None = None) -> list[str]:
    """``["modality/name", …]``, optionally for one modality."""
    if modality is not None:
        registry().get("modalities", modality)
    return [e.qualname for e in registry().entries("encoders", modality)]


def list_augmentations(modality: str | None = None) -> list[str]:
    if modality is not None:
        registry().get("modalities", modality)
    return [e.qualname for e in registry().entries("augmentations", modality)]


def list_pair_strategies() -> list[str]:
    return registry().names("pair_strategies")


def list_objectives() -> list[str]:
    return registry().names("objectives")


def create_objective(name: str, **kw):
    """Build a registered objective (an ``nn.Module``)."""
    from zoo.checks import call_factory
    entry = registry().get("objectives", name)
    return call_factory(f"objective {name!r}", entry.factory, **kw)


from zoo.data.datasets import create_dataset, list_datasets  # noqa: E402,F401
from zoo.hub.catalog import list_models, load  # noqa: E402,F401
from zoo.model import ContrastiveModel, create_encoder, create_model  # noqa: E402,F401


def train(recipe, overrides=None, **kw):
    """Train from a recipe (a path, a :class:`zoo.recipes.Recipe` or a dict); returns ``TrainResult(run_dir,
    metrics, model)``. ``dataset=`` / ``eval_dataset=`` (a Dataset or a list of dicts) and ``model=`` (a
    ContrastiveModel, e.g. from ``zoo.load``) replace the recipe's names (docs/own-data.md)."""
    from zoo.training.trainer import train as _train
    return _train(recipe, overrides=overrides, **kw)


def evaluate(model, dataset, task: str = "zero_shot", **kw):
    """Evaluate a model on a dataset: ``zero_shot``, ``retrieval``, ``linear_probe`` or ``alignment``, with the
    defaults of a recipe's ``[eval]`` (retrieval matches by label when the dataset has one label field)."""
    from zoo.evaluation.runner import evaluate as _evaluate
    return _evaluate(model, dataset, task=task, **kw)
