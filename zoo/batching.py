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
        self._generators: list[torch.Generator] = []  # reused: re-seeded per sample, per batch
        strategy.setup(self.fields)

    def __getstate__(self):  # DataLoader workers build their own generators
        return {**self.__dict__, "_generators": []}

    def load(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Each field through its modality's ``load`` (idempotent), so augmentations see loaded raws."""
        return {k: self.loaders[k](v) if k in self.loaders else v for k, v in sample.items()}

    def generators(self, items: list[tuple[int, Any]]) -> list[torch.Generator]:
        """One generator per sample, seeded by :func:`sample_seed` (the strategies use them during the call)."""
        while len(self._generators) < len(items):
            self._generators.append(torch.Generator())
        return [g.manual_seed(sample_seed(self.seed, self.epoch, i)) for g, (i, _) in zip(self._generators, items)]

    def __call__(self, items: list[tuple[int, dict[str, Any]]]) -> Batch:
        samples = [self.load(s) for _, s in items]
        loaded = self.loaded_ids(samples)
        raw = self.strategy.pair(samples, self.label_fields, self.generators(items))
        views = {}
        for view, (modality, raws) in raw.views.items():
            tower = self.model.tower_for(view.split(".")[0], modality)
            views[view] = (tower, self.preprocess(tower, raws, loaded))
        return Batch(views, raw.labels, raw.mask, len(items))

    def loaded_ids(self, samples: list[dict[str, Any]]) -> dict[str, set[int]]:
        """``{modality: ids of the values its load returned}`` (objects kept alive by ``samples``)."""
        out: dict[str, set[int]] = {}
        for f, m in self.fields.items():
            out.setdefault(m, set()).update(id(s[f]) for s in samples if f in s)
        return out

    def preprocess(self, tower: str, raws: list[Any], loaded: dict[str, set[int]]) -> Any:
        """``model.preprocess(tower, raws)``, except that the raws its modality's load returned (the same
        objects, not augmented) are not loaded again: ``load`` is idempotent, so this only saves time."""
        t = self.model.tower(tower)
        entry = registry().get("modalities", t.config.modality)
        done = loaded.get(t.config.modality, set())
        batch = [r if id(r) in done else entry.factory(r) for r in raws]
        return t.encoder.preprocess(batch) if hasattr(t.encoder, "preprocess") else entry.meta["collate"](batch)
