"""The Dataset contract and dataset lookups.

A zoo dataset is a ``torch.utils.data.Dataset`` (map-style) whose items are dicts
``{field: raw}`` and which carries these attributes:

- ``fields: dict[str, str]`` — field → modality of every input field (``{"image": "image", "caption": "text"}``);
- ``label_fields: list[str]`` — fields holding integer ids (``"class"``, ``"patient"``…);
- ``class_names: list[str] | None`` and ``prompts: list[str] | None`` (templates with ``{}``) for zero-shot;
- ``split: str``; ``description``, ``source`` and ``license`` strings.

Datasets are registered with ``zoo_register_datasets`` as ``make(split="train", **kw)``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from .errors import DataError
from .plugins import registry
from .utils import call_factory


class ZooDataset(Dataset):
    """Convenience base class holding the contract's attributes."""

    fields: dict[str, str] = {}
    label_fields: list[str] = []
    class_names: list[str] | None = None
    prompts: list[str] | None = None
    split: str = "train"
    description: str = ""
    source: str = ""
    license: str = ""


def create_dataset(name: str, split: str = "train", **kw: Any) -> Dataset:
    """Build a registered dataset and check it honours the contract."""
    entry = registry().get("datasets", name)
    ds = call_factory(f"dataset {name!r}", entry.factory, split=split, **kw)
    fields = getattr(ds, "fields", None)
    if not isinstance(fields, dict) or not fields:
        raise DataError(f"dataset {name!r} (plugin {entry.plugin!r}) has no 'fields' mapping field → modality.")
    if hasattr(ds, "__len__") and len(ds) == 0:
        raise DataError(f"dataset {name!r} split {split!r} is empty; check its options ({kw or 'none'}) or the split name.")
    return ds


def list_datasets() -> list[str]:
    return registry().names("datasets")


class Indexed(Dataset):
    """Wrap a dataset so items come with their index (augmentations are seeded per index)."""

    def __init__(self, ds: Dataset):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[int, dict[str, Any]]:
        return i, self.ds[i]


class EpochSampler(torch.utils.data.Sampler[int]):
    """A seeded permutation per epoch that can start mid-epoch (exact resume, no saved iterator).

    With ``world > 1`` rank ``r`` takes rows ``r·b … (r+1)·b`` of every global batch of
    ``world·b`` rows, so the ranks together see exactly the batches one process would see
    with batch size ``world·b`` (and a run can resume at another world size).
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1, batch: int = 1):
        self.n, self.seed, self.shuffle, self.rank, self.world, self.batch = n, seed, shuffle, rank, world, batch
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start_batch_index: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch_index * self.batch

    def order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        if self.world == 1:
            return idx
        big, b, r = self.batch * self.world, self.batch, self.rank
        return [i for k in range(self.n // big) for i in idx[k * big + r * b:k * big + (r + 1) * b]]

    def __iter__(self):
        return iter(self.order()[self.start:])

    def __len__(self) -> int:
        full = self.n if self.world == 1 else self.n // (self.batch * self.world) * self.batch
        return max(0, full - self.start)
