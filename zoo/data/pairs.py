"""Pair strategies: how a list of samples becomes views (what is encoded) and positives.

``strategy.pair(samples, fields, generators) -> RawViews``; the collator then preprocesses
each view with the tower that encodes it. Built-ins registered here:

- ``paired``: each chosen field is a view; rows aligned across modalities (CLIP, Symile).
- ``two_views``: one field, two independently augmented views (SimCLR); labels kept (SupCon).
- ``dropout_twins``: one field twice, unchanged; dropout makes the twins differ (SimCSE).
- ``hierarchical``: ``paired`` that requires the group-id label of every level.

Every strategy passes the dataset's label fields through as ``labels`` and can augment any
view with registered augmentations: ``augment = {field: [{name = "…", …}]}``.
"""
from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from zoo.checks import call_factory
from zoo.errors import DataError, RecipeError, UnknownNameError
from zoo.hookspecs import hookimpl
from zoo.plugins import registry


@dataclass
class RawViews:
    views: dict[str, tuple[str, list[Any]]]           # view -> (modality, raws)
    labels: dict[str, torch.Tensor] = field(default_factory=dict)  # level -> (B,)
    mask: dict[str, torch.Tensor] | None = None       # view -> (B,) bool


class Augmented(list):
    """A view's raws as the augmentations returned them. An augmentation takes a loaded raw and returns a loaded
    raw (the registry-wide contract test checks every one), so the collator hands these to the tower as they
    are, without its modality's ``load`` again."""


def augment_batch(augments: Sequence[Callable], raws: list[Any], gens) -> list[Any]:
    """Each raw through ``augments`` in order, raw ``k`` drawing from ``gens[k]``, run augmentation by augmentation
    over the batch (an augmentation's ``batch`` form when it has one, else one raw at a time). Generators are
    per sample, so each still serves its draws in the order of the per-sample chain: the results are those of
    ``for aug in augments: raw = aug(raw, g)`` for every sample, bit for bit."""
    out = list(raws)
    for aug in augments:
        batch = getattr(aug, "batch", None)
        out = batch(out, gens) if batch is not None else [aug(r, g) for r, g in zip(out, gens)]
    return out


def make_augmentation(modality: str, spec: dict[str, Any]) -> Callable[[Any, torch.Generator], Any]:
    spec = dict(spec)
    name = spec.pop("name", None)
    if name is None:
        raise RecipeError(f"an augmentation for {modality!r} needs a 'name' (see `zoo list augmentations`).")
    entry = registry().get("augmentations", name, modality)
    return call_factory(f"augmentation {modality}/{name}", entry.factory, **spec)


class PairStrategy(abc.ABC):
    """Base class. Subclasses implement :meth:`views_of` (a class without it cannot be instantiated)."""

    def __init__(self, fields: list[str] | None = None, augment: dict[str, list[dict]] | None = None):
        self.fields = list(fields) if fields else None
        self.augment_specs = augment or {}
        self._augment: dict[str, list[Callable]] | None = None

    def setup(self, dataset_fields: dict[str, str]) -> None:
        """Check the chosen fields against the dataset and build the augmentations."""
        for f in (self.fields or []) + list(self.augment_specs):
            if f not in dataset_fields:
                raise UnknownNameError("dataset field", f, dataset_fields,
                                       hint=f"The dataset's fields are: {', '.join(dataset_fields)}.")
        self.dataset_fields = dataset_fields
        self._augment = {f: [make_augmentation(dataset_fields[f], s) for s in specs]
                         for f, specs in self.augment_specs.items()}

    def augment(self, f: str, raw: Any, g: torch.Generator) -> Any:
        """One raw through ``f``'s augmentations (:meth:`augment_all` does a batch, and is what views use)."""
        for aug in (self._augment or {}).get(f, []):
            raw = aug(raw, g)
        return raw

    def augment_all(self, f: str, raws: list[Any], gens) -> list[Any]:
        """:meth:`augment` of each raw with its sample's generator, run by :func:`augment_batch` (batch forms
        where the augmentations have them; the views of the per-sample chain, bit for bit); without
        augmentations for ``f`` the raws as they are (the generators, seeded lazily, are then never touched)."""
        augs = (self._augment or {}).get(f)
        if not augs:
            return list(raws)
        return Augmented(augment_batch(augs, raws, gens))

    def chosen(self) -> list[str]:
        return self.fields or list(self.dataset_fields)

    def pair(self, samples: list[dict[str, Any]], label_fields: list[str], gens: list[torch.Generator]) -> RawViews:
        labels = {}
        for lf in label_fields:
            try:
                labels[lf] = torch.as_tensor([s[lf] for s in samples], dtype=torch.long)
            except KeyError as exc:
                raise DataError(f"a sample lacks its label field {lf!r}.") from exc
        return RawViews(self.views_of(samples, gens), labels)

    @abc.abstractmethod
    def views_of(self, samples, gens) -> dict[str, tuple[str, list[Any]]]:
        """``{view name: (modality, [raw of each sample])}`` for ``samples``, augmented with ``gens``
        (one generator per sample)."""


class Paired(PairStrategy):
    """Each chosen field is one view (rows aligned across modalities)."""

    def views_of(self, samples, gens):
        return {f: (self.dataset_fields[f], self.augment_all(f, [s[f] for s in samples], gens)) for f in self.chosen()}


class TwoViews(PairStrategy):
    """Two augmented views of one field, named ``<field>.1`` and ``<field>.2`` (SimCLR)."""

    def __init__(self, field: str | None = None, **kw: Any):
        super().__init__(fields=[field] if field else None, **kw)

    def setup(self, dataset_fields):
        super().setup(dataset_fields)
        if len(self.chosen()) != 1:
            raise RecipeError(f"{type(self).__name__} works on one field; set pairs.options.field to one of "
                              f"{list(dataset_fields)}.")

    def views_of(self, samples, gens):
        (f,) = self.chosen()
        mod = self.dataset_fields[f]
        return {f"{f}.{k}": (mod, self.augment_all(f, [s[f] for s in samples], gens)) for k in (1, 2)}


class DropoutTwins(TwoViews):
    """The same input twice; the encoder's dropout makes the two views differ (SimCSE)."""

    def views_of(self, samples, gens):
        (f,) = self.chosen()
        raws = self.augment_all(f, [s[f] for s in samples], gens)
        return {f"{f}.1": (self.dataset_fields[f], raws), f"{f}.2": (self.dataset_fields[f], type(raws)(raws))}


class Hierarchical(Paired):
    """Paired views plus the group id of every level (``levels = ["patient", "trial"]``)."""

    def __init__(self, levels: list[str], **kw: Any):
        super().__init__(**kw)
        if not levels:
            raise RecipeError("pairs.options.levels must list the label fields of the hierarchy, e.g. ['patient', 'trial'].")
        self.levels = list(levels)

    def pair(self, samples, label_fields, gens):
        missing = [lv for lv in self.levels if lv not in label_fields]
        if missing:
            raise DataError(f"the dataset has no label field(s) {missing} needed by the hierarchy; it has {label_fields}.")
        return super().pair(samples, label_fields, gens)


@hookimpl
def zoo_register_pair_strategies(register):
    register("paired", Paired, description="each field a view, rows aligned across modalities (CLIP, Symile)")
    register("two_views", TwoViews, description="two augmented views of one field (SimCLR; SupCon with labels)")
    register("dropout_twins", DropoutTwins, description="one field twice; dropout makes the twins (SimCSE)")
    register("hierarchical", Hierarchical, description="paired views plus group ids per level (COMET, BioCLIP)")
