"""The ``graphcl`` pair strategy: two views, each from one augmentation drawn from a pool.

GraphCL (You et al. 2020) makes each view of a graph with an augmentation sampled per view
from a pool (node dropping, subgraph, edge perturbation, attribute masking), so the two views
usually differ in kind. The core ``two_views`` applies the *same* list to both views; this
strategy draws, per sample and per view, one augmentation from ``pool`` (seeded by the
sample's generator), after the optional common ``augment`` list::

    [pairs]
    strategy = "graphcl"
    options = { field = "graph", pool = [{ name = "node_drop" }, { name = "subgraph" }] }

Works for any modality whose augmentations are registered (``molecule`` too).
"""
from __future__ import annotations

from typing import Any

import torch

from zoo.data.pairs import Augmented, TwoViews, make_augmentation
from zoo.errors import RecipeError


class GraphCLViews(TwoViews):
    """Views ``<field>.1`` and ``<field>.2``, each augmented by one pool member chosen at random."""

    def __init__(self, field: str | None = None, pool: list[dict] | None = None, **kw: Any):
        super().__init__(field=field, **kw)
        if not pool or not all(isinstance(p, dict) for p in pool):
            raise RecipeError("pair strategy 'graphcl' needs pool = [{ name = \"node_drop\" }, "
                              "{ name = \"subgraph\" }, …] (the augmentations each view draws one of).")
        self.pool_specs = [dict(p) for p in pool]

    def setup(self, dataset_fields: dict[str, str]) -> None:
        super().setup(dataset_fields)
        (f,) = self.chosen()
        self._pool = [make_augmentation(dataset_fields[f], spec) for spec in self.pool_specs]

    def pick(self, raw: Any, g: torch.Generator) -> Any:
        """``raw`` through one pool member, drawn with ``g``."""
        return self._pool[int(torch.randint(len(self._pool), (1,), generator=g))](raw, g)

    def views_of(self, samples, gens):
        (f,) = self.chosen()
        mod = self.dataset_fields[f]
        views = {}
        for k in (1, 2):  # the recipe's augmentations over the batch, then each sample's pool draw: every sample's
            # generator serves its draws in the per-sample order; pool members return loaded raws as any augmentation
            augmented = self.augment_all(f, [s[f] for s in samples], gens)
            views[f"{f}.{k}"] = (mod, Augmented(self.pick(r, g) for r, g in zip(augmented, gens)))
        return views
