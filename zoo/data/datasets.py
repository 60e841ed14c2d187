"""The Dataset contract and dataset lookups.

A zoo dataset is a ``torch.utils.data.Dataset`` (map-style) whose items are dicts
``{field: raw}`` and which carries these attributes:

- ``fields: dict[str, str]`` — field → modality of every input field (``{"image": "image", "caption": "text"}``);
- ``label_fields: list[str]`` — fields holding integer ids (``"class"``, ``"patient"``…);
- ``class_names: list[str] | None`` and ``prompts: list[str] | None`` (templates with ``{}``) for zero-shot;
- ``split: str``; ``description``, ``source`` and ``license`` strings.

Datasets are registered with ``zoo_register_datasets`` as ``make(split="train", **kw)``.
In memory, :func:`as_dataset` turns a list of dicts into one (:class:`ListDataset`); readers of
files on disk (``csv``, ``folder``) use :func:`modality_of_file` and :func:`load_value`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from zoo.checks import call_factory
from zoo.errors import DataError, ZooError
from zoo.plugins import registry


class ZooDataset(Dataset):
    """Convenience base class holding the contract's attributes."""

    fields: dict[str, str] = {}
    label_fields: list[str] = []
    loaded_fields: frozenset[str] = frozenset()  # fields whose raws already are what their modality's load returns
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


# -- files and raw values --------------------------------------------------------------------
def file_extensions() -> dict[str, str]:
    """``{".png": modality, …}``: the file extensions each modality registered (``extensions=``)."""
    out: dict[str, str] = {}
    for e in registry().entries("modalities"):
        for ext in e.factory.extensions:
            out.setdefault(ext.lower(), e.name)
    return out


def modality_of_file(path: str | Path) -> str | None:
    """The modality whose registered extensions include ``path``'s suffix (``None`` if none does)."""
    return file_extensions().get(Path(path).suffix.lower())


def load_value(modality: str, value: Any, where: str) -> Any:
    """``value`` through ``modality``'s ``load``; any failure becomes a :class:`DataError` that
    starts with ``where`` (the file, row and column), so a bad row is named, not guessed."""
    load = registry().modality(modality).load
    try:
        return load(value)
    except ZooError as exc:
        raise DataError(f"{where}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - a loader's own error (PIL, soundfile…) gets the row's name
        raise DataError(f"{where}: cannot read {value!r} as {modality} ({type(exc).__name__}: {exc}). "
                        f"Fix or remove that row.") from exc


class ListDataset(ZooDataset):
    """Rows in memory (a list of dicts) as a zoo dataset.

    ``fields`` maps field → modality; without it, every key named like a registered modality
    is a field of that modality and every key holding integers is a label field
    (``[{"image": "a.png", "text": "a cat", "class": 3}, …]``). Values go through their
    modality's ``load`` when read, so a bad value is a :class:`DataError` naming its row.
    """

    description = "rows in memory (a list of dicts)"

    def __init__(self, rows: Sequence[Mapping[str, Any]], fields: dict[str, str] | None = None,
                 label_fields: list[str] | None = None, class_names: list[str] | None = None,
                 prompts: list[str] | None = None, split: str = "train"):
        rows = list(rows)
        if not rows:
            raise DataError("the in-memory dataset is empty; give at least one row (a dict of field → value).")
        keys = list(rows[0]) if isinstance(rows[0], Mapping) else None
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping) or set(row) != set(keys or ()):
                raise DataError(f"row {i} of the in-memory dataset is {_describe(row)}; every row must be a dict "
                                f"with the keys of row 0 ({keys}).")
        modalities = set(registry().names("modalities"))
        if fields is None:
            fields = {k: k for k in keys if k in modalities}
        if label_fields is None:
            label_fields = [k for k in keys if k not in fields and all(_is_int(r[k]) for r in rows)]
        unknown = [k for k in keys if k not in fields and k not in label_fields]
        if unknown or not fields:
            raise DataError(f"the in-memory dataset has keys {unknown or keys} that are neither a modality "
                            f"({sorted(modalities)}) nor integer labels; name them: zoo.data.datasets.ListDataset(rows, "
                            f"fields={{'caption': 'text', …}}, label_fields=[…]).")
        for f, m in fields.items():
            registry().get("modalities", m)
        self.rows, self.fields, self.label_fields = rows, dict(fields), list(label_fields)
        self.class_names, self.prompts, self.split = class_names, prompts, split

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        out = {f: load_value(m, row[f], f"row {i}, field {f!r}") for f, m in self.fields.items()}
        return {**out, **{lv: int(row[lv]) for lv in self.label_fields}}


def as_dataset(obj: Any, what: str = "dataset") -> Dataset:
    """A zoo dataset from a Dataset object (checked against the contract) or a list of dicts."""
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes, Dataset)):
        return ListDataset(obj)
    if not isinstance(getattr(obj, "fields", None), dict) or not obj.fields:
        raise DataError(f"the {what} object ({type(obj).__name__}) has no 'fields' mapping field → modality; "
                        f"pass a list of dicts, a zoo.data.datasets.ListDataset, or set .fields = {{'image': 'image', …}}.")
    if hasattr(obj, "__len__") and len(obj) == 0:
        raise DataError(f"the {what} object ({type(obj).__name__}) is empty.")
    return obj


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, torch.Tensor) and v.dim() == 0 \
        and not v.is_floating_point()


def _describe(row: Any) -> str:
    return f"a dict with keys {list(row)}" if isinstance(row, Mapping) else f"a {type(row).__name__}"


class EpochItems(list):
    """A batch's ``[(index, item), …]`` that carries the epoch it was drawn in (``.epoch``): the collator seeds
    the batch's augmentations from it, so a loader worker kept across epochs needs no message from the main
    process."""

    def __init__(self, epoch: int, items: list[tuple[int, Any]]):
        super().__init__(items)
        self.epoch = epoch


class Indexed(Dataset):
    """Wrap a dataset so items come with their index (augmentations are seeded per index).

    Keys are indices, or ``(epoch, index)`` pairs from a tagged :class:`EpochSampler`: then the batch comes
    back as :class:`EpochItems` and a dataset with ``set_epoch`` is moved to that epoch first, in whichever
    process fetches it (so loader workers can persist across epochs)."""

    def __init__(self, ds: Dataset):
        self.ds, self.epoch = ds, None

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[int, dict[str, Any]]:
        if isinstance(key, tuple):  # (epoch, index)
            self._enter(key[0])
            key = key[1]
        return key, self.ds[key]

    def __getitems__(self, keys: list) -> list[tuple[int, dict[str, Any]]]:
        """A batch's items in one call (the DataLoader's fetcher uses it): one Python call less per sample."""
        ds = self.ds
        if keys and isinstance(keys[0], tuple):  # (epoch, index): one epoch per batch
            epoch = keys[0][0]
            self._enter(epoch)
            return EpochItems(epoch, [(i, ds[i]) for _, i in keys])
        return [(i, ds[i]) for i in keys]

    def _enter(self, epoch: int) -> None:
        if epoch != self.epoch:
            if hasattr(self.ds, "set_epoch"):  # e.g. captions re-drawn per epoch
                self.ds.set_epoch(epoch)
            self.epoch = epoch


class EpochSampler(torch.utils.data.Sampler[int]):
    """A seeded permutation per epoch that can start mid-epoch (exact resume, no saved iterator).

    With ``world > 1`` rank ``r`` takes rows ``r·b … (r+1)·b`` of every global batch of
    ``world·b`` rows, so the ranks together see exactly the batches one process would see
    with batch size ``world·b`` (and a run can resume at another world size).
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1, batch: int = 1,
                 tagged: bool = False):
        self.n, self.seed, self.shuffle, self.rank, self.world, self.batch = n, seed, shuffle, rank, world, batch
        self.epoch, self.start, self.tagged = 0, 0, tagged  # tagged: yield (epoch, index) pairs (see Indexed)

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
        order = self.order()[self.start:]
        if self.tagged:
            epoch = self.epoch
            return ((epoch, i) for i in order)
        return iter(order)

    def __len__(self) -> int:
        full = self.n if self.world == 1 else self.n // (self.batch * self.world) * self.batch
        return max(0, full - self.start)
