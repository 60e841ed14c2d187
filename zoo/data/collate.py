"""Turn a list of dataset items into the views, labels and mask one training step needs."""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch

from zoo.data.batches import pin
from zoo.data.pairs import Augmented, PairStrategy
from zoo.errors import DataError, ZooError
from zoo.plugins import registry


@dataclass
class Batch:
    views: dict[str, tuple[str, Any]]   # view -> (tower key, collated batch)
    labels: dict[str, torch.Tensor]     # level -> (B,)
    mask: dict[str, torch.Tensor] | None
    size: int

    def pin_memory(self) -> Batch:
        """Pinned copies of every tensor: the DataLoader (``pin_memory=True``, on CUDA) calls this, and passes
        an object without it through unpinned."""
        return Batch({v: (tower, pin(b)) for v, (tower, b) in self.views.items()}, pin(self.labels), pin(self.mask),
                     self.size)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentations: a function of (seed, epoch, index) only."""
    return (seed * 1_000_003 + epoch * 998_244_353 + index) % (2**63 - 1)


class SampleGenerators:
    """The per-sample generators of one batch, seeded lazily: sample ``k``'s generator is seeded by
    :func:`sample_seed` the first time it is asked for and then kept, so every view of a sample draws
    from one stream, exactly as if all were seeded up front — while a batch whose strategy never
    augments pays nothing for them. Indexable and iterable like the list it stands for."""

    def __init__(self, pool: list[torch.Generator], seed: int, epoch: int, indices: list[int]):
        self.pool, self.seed, self.epoch, self.indices = pool, seed, epoch, indices
        self.ready = [False] * len(indices)
        while len(pool) < len(indices):
            pool.append(torch.Generator())

    @property
    def seeds(self) -> list[int]:
        """Each sample's :func:`sample_seed` (computed when a generator is first asked for, not up front)."""
        return [sample_seed(self.seed, self.epoch, i) for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> torch.Generator:
        if not self.ready[k]:
            self.pool[k].manual_seed(sample_seed(self.seed, self.epoch, self.indices[k]))
            self.ready[k] = True
        return self.pool[k]

    def __iter__(self):
        return (self[k] for k in range(len(self.indices)))


class Collator:
    """``collate_fn`` for the DataLoader: pair strategy, then each view preprocessed by its tower."""

    def __init__(self, model, strategy: PairStrategy, dataset, seed: int):
        self.model, self.strategy, self.seed, self.epoch = model, strategy, seed, 0
        self.label_fields = list(getattr(dataset, "label_fields", []))
        self.fields = dict(dataset.fields)
        reg = registry()
        loaded = set(getattr(dataset, "loaded_fields", ()))  # the dataset's word that load would return them as is
        self.loaders = {f: None if f in loaded else reg.modality(m).load for f, m in self.fields.items()}
        self._claims = {f: reg.modality(self.fields[f]).load for f in loaded if f in self.fields}  # checked once
        self._dataset_name = type(dataset).__name__
        self._generators: list[torch.Generator] = []  # reused: re-seeded per sample, per batch
        self._towers: dict[tuple[str, str], tuple[str, Any]] = {}  # (view, modality) -> tower, prep(raws, loaded)
        strategy.setup(self.fields)

    def __getstate__(self):  # DataLoader workers build their own generators
        return {**self.__dict__, "_generators": [], "_towers": {}}

    def load_all(self, items: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Every sample with each field through its modality's ``load`` (idempotent, so augmentations see
        loaded raws), one field (one ``load`` function) at a time."""
        return self._load_columns(items)[0]

    def _load_columns(self, items: list[tuple[int, dict[str, Any]]]) -> tuple[list[dict[str, Any]], Loaded]:
        """:meth:`load_all`, and the loaded values field by field (see :class:`Loaded`). A sample's copy is
        written to only where ``load`` returned another object (for data already loaded, none is)."""
        samples = [dict(s) for _, s in items]  # the strategy gets copies: the dataset's own dicts stay as they were
        columns = {}
        for f, load in self.loaders.items():
            has = [s for s in samples if f in s]
            raw = [s[f] for s in has]
            if load is None:  # in the dataset's loaded_fields
                if f in self._claims and raw:
                    self._check_claim(f, raw[0])
                columns[f] = raw
                continue
            columns[f] = done = list(map(load, raw))
            if not all(map(operator.is_, raw, done)):
                for s, a, b in zip(has, raw, done):
                    if a is not b:
                        s[f] = b
        return samples, Loaded(self.fields, columns)

    def _check_claim(self, field: str, raw: Any) -> None:
        """The first raw of a field the dataset says is loaded: ``load`` must return it as it is."""
        load = self._claims.pop(field)
        try:
            same = load(raw) is raw
        except ZooError:
            same = False
        if not same:
            raise DataError(f"dataset {self._dataset_name} lists {field!r} in loaded_fields, but its raws are not "
                            f"what the {self.fields[field]!r} modality's load returns ({type(raw).__name__}); "
                            f"remove {field!r} from loaded_fields.")

    def generators(self, items: list[tuple[int, Any]]) -> SampleGenerators:
        """One generator per sample, seeded by :func:`sample_seed` when first used (see :class:`SampleGenerators`),
        in the epoch the items carry (:class:`~zoo.data.datasets.EpochItems`) or else :attr:`epoch`."""
        return SampleGenerators(self._generators, self.seed, getattr(items, "epoch", self.epoch), [i for i, _ in items])

    def __call__(self, items: list[tuple[int, dict[str, Any]]]) -> Batch:
        samples, loaded = self._load_columns(items)  # loaded: taken before the strategy runs (it may replace values)
        raw = self.strategy.pair(samples, self.label_fields, self.generators(items))
        views = {}
        for view, (modality, raws) in raw.views.items():
            tower, prep = self.tower_of(view, modality)
            views[view] = (tower, prep(raws, loaded))
        return Batch(views, raw.labels, raw.mask, len(items))

    def loaded_ids(self, samples: list[dict[str, Any]]) -> dict[str, set[int]]:
        """``{modality: ids of the values its load returned}`` (objects kept alive by ``samples``)."""
        return Loaded(self.fields, {f: [s[f] for s in samples if f in s] for f in self.fields}).all_ids()

    def tower_of(self, view: str, modality: str):
        """``(tower key, preprocess(raws, loaded))`` of a view, looked up once per collator: the tower,
        its modality's spec and its encoder's ``preprocess`` (or the modality's ``collate``) are fixed."""
        key = (view, modality)
        if key not in self._towers:
            field = view.split(".")[0]
            tower = self.model.tower_for(field, modality)
            t = self.model.tower(tower)
            spec = registry().modality(t.config.modality)
            batch_of = t.encoder.preprocess if hasattr(t.encoder, "preprocess") else spec.collate
            # the view named after a field of the tower's modality ("x", or "x.1" of two_views) may be that
            # field's loaded values themselves: checked element by element, no set of ids needed
            same = field if self.fields.get(field) == t.config.modality else None

            def prep(raws, loaded, modality=t.config.modality, load=spec.load, batch_of=batch_of, same=same):
                if type(raws) is Augmented:  # augmentations return loaded raws (their contract)
                    return batch_of(raws)
                return batch_of(loaded.as_loaded(raws, modality, load, same))
            self._towers[key] = (tower, prep)
        return self._towers[key]


class Loaded:
    """The values the modalities' ``load`` returned for one batch, taken before the pair strategy ran:
    ``columns[field]`` lists them (which also keeps them alive, so their ids stay theirs); the sets of
    their ids per modality are built only when a view is not simply one of these columns (augmented
    views, strategies that mix fields)."""

    def __init__(self, fields: dict[str, str], columns: dict[str, list[Any]]):
        self.fields, self.columns = fields, columns  # {field: its modality}, {field: [loaded value of each sample having it]}
        self._ids: dict[str, set[int]] | None = None

    def all_ids(self) -> dict[str, set[int]]:
        """``{modality: ids of the values its load returned}``."""
        if self._ids is None:
            self._ids = {}
            for f, m in self.fields.items():
                self._ids.setdefault(m, set()).update(map(id, self.columns[f]))
        return self._ids

    def as_loaded(self, raws: list[Any], modality: str, load, field: str | None) -> list[Any]:
        """``raws`` with those ``load`` did not return already loaded (``load`` is idempotent: the result
        is the same as loading all of them, without the calls). ``field``: a field of ``modality`` whose
        column ``raws`` may be, element for element (the fast check)."""
        column = self.columns.get(field) if field is not None else None
        if column is not None and len(column) == len(raws) and all(map(operator.is_, raws, column)):
            return raws
        done = self.all_ids().get(modality, set())
        return raws if all(id(r) in done for r in raws) else [r if id(r) in done else load(r) for r in raws]
