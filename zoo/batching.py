"""Turn a list of dataset items into the views, labels and mask one training step needs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .pairs import PairStrategy
from .plugins import registry


@dataclass
class Batch:
    views: dict[str, tuple[str, Any]]   # view -> (tower key, collated batch)
    labels: dict[str, torch.Tensor]     # level -> (B,)
    mask: dict[str, torch.Tensor] | None
    size: int


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentations: a function of (seed, epoch, index) only."""
    return (seed * 1_000_003 + epoch * 998_244_353 + index) % (2**63 - 1)


class Collator:
    """``collate_fn`` for the DataLoader: pair strategy, then each view preprocessed by its tower."""

    def __init__(self, model, strategy: PairStrategy, dataset, seed: int):
        self.model, self.strategy, self.seed, self.epoch = model, strategy, seed, 0
        self.label_fields = list(getattr(dataset, "label_fields", []))
        self.fields = dict(dataset.fields)
        reg = registry()
        self.loaders = {f: reg.get("modalities", m).factory for f, m in self.fields.items()}
        strategy.setup(self.fields)

    def load(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Each field through its modality's ``load`` (idempotent), so augmentations see loaded raws."""
        return {k: self.loaders[k](v) if k in self.loaders else v for k, v in sample.items()}

    def __call__(self, items: list[tuple[int, dict[str, Any]]]) -> Batch:
        gens = [torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, i)) for i, _ in items]
        raw = self.strategy.pair([self.load(s) for _, s in items], self.label_fields, gens)
        views = {}
        for view, (modality, raws) in raw.views.items():
            tower = self.model.tower_for(view.split(".")[0], modality)
            views[view] = (tower, self.model.preprocess(tower, raws))
        return Batch(views, raw.labels, raw.mask, len(items))
