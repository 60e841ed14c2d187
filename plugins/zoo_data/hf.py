"""``hf-datasets``: a Hugging Face ``datasets`` dataset from local files, as a zoo dataset.

``path`` is a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, a
data file or directory of them (``.parquet``, ``.json``/``.jsonl``, ``.csv``, ``.arrow``), or a
table ``{train = "…", test = "…"}`` of such files. The requested split is used when it exists;
when the data has only ``train`` (e.g. plain data files), the fixed seeded 80/20 split of its
rows gives ``train``/``test`` (not when streaming: name the splits' files then).
``fields`` maps a field to its modality (column of the same name) or to ``{column, modality}``;
``labels`` maps a label field to an integer column. Values go through the modality's ``load``
(HF ``Image`` → PIL, ``Audio`` → ``(array, sampling_rate)``, lists → tensors).
``streaming = true`` gives an iterable dataset (no length; for embedding/evaluation loops —
the trainer samples map-style datasets).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset

from zoo.checks import require
from zoo.data import ZooDataset
from zoo.errors import DataError

from ._splits import split_indices
from .streams import load_field

BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv", ".arrow": "arrow"}


def builder_of(files: list[Path]) -> str:
    kinds = {BUILDERS.get(f.suffix.lower()) for f in files}
    if len(kinds) != 1 or None in kinds:
        raise DataError(f"hf-datasets: data files must share one of the formats {sorted(BUILDERS)}, got "
                        f"{sorted({f.suffix for f in files})}.")
    return kinds.pop()


def data_files(path: Any) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.suffix.lower() in BUILDERS)
    else:
        files = [p] if p.is_file() else sorted(p.parent.glob(p.name))
    if not files:
        raise DataError(f"hf-datasets: no data files at {path} (formats {sorted(BUILDERS)}).")
    return files


def load_hf(path: Any, streaming: bool, cache_dir: str | None):
    """A ``Dataset``/``DatasetDict`` (or their iterable forms) from local files only."""
    datasets = require("datasets", "data", "the hf-datasets dataset")
    if isinstance(path, dict):
        files = {split: [str(f) for f in data_files(p)] for split, p in path.items()}
        builder = builder_of([Path(f) for fs in files.values() for f in fs])
        return datasets.load_dataset(builder, data_files=files, streaming=streaming, cache_dir=cache_dir)
    p = Path(path)
    if p.is_dir() and any((p / n).exists() for n in ("dataset_info.json", "dataset_dict.json", "state.json")):
        ds = datasets.load_from_disk(str(p))
        return ds.to_iterable_dataset() if streaming and hasattr(ds, "to_iterable_dataset") else ds
    files = data_files(p)
    return datasets.load_dataset(builder_of(files), data_files=[str(f) for f in files], streaming=streaming,
                                 cache_dir=cache_dir)


def pick_split(ds: Any, split: str, streaming: bool) -> tuple[Any, torch.Tensor | None]:
    """The split's rows: a named split, or the 80/20 split of ``train`` (then also the row ids)."""
    if not hasattr(ds, "keys"):              # a single Dataset: treat it as "train"
        ds = {"train": ds}
    if set(ds.keys()) == {"train"} and split in ("train", "test"):
        if streaming:                    # streamed rows cannot be split by index
            raise DataError("hf-datasets: streamed data with only a 'train' split cannot be split 80/20; give "
                            "path = {train = …, test = …} or streaming = false.")
        return ds["train"], split_indices(len(ds["train"]), split)
    if split in ds:
        return ds[split], None
    raise DataError(f"hf-datasets: no split {split!r}; the data has {sorted(ds.keys())}.")


def to_loadable(value: Any) -> Any:
    """HF feature values → what modality ``load`` functions accept."""
    if isinstance(value, dict) and "array" in value and "sampling_rate" in value:
        return value["array"], int(value["sampling_rate"])
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        return value.get("bytes") or value["path"]
    if isinstance(value, list):
        return torch.tensor(value, dtype=torch.float32)
    return value


class HFRows:
    """Shared option handling: fields → (column, modality), labels → column."""

    def setup(self, fields: dict | None, labels: dict | None, class_names, prompts) -> None:
        if not fields:
            raise DataError("hf-datasets needs fields, e.g. {image = \"image\", caption = {column = \"text\", "
                            "modality = \"text\"}}.")
        self.columns = {f: (s, f) if isinstance(s, str) else (s["modality"], s.get("column", f))
                        for f, s in fields.items()}
        self.fields = {f: modality for f, (modality, _) in self.columns.items()}
        self.labels_spec = dict(labels or {})
        self.label_fields = list(self.labels_spec)
        self.class_names, self.prompts = class_names, prompts

    def item(self, row: dict) -> dict[str, Any]:
        try:
            out = {f: load_field(m, to_loadable(row[c])) for f, (m, c) in self.columns.items()}
            out.update({name: int(row[c]) for name, c in self.labels_spec.items()})
        except KeyError as exc:
            raise DataError(f"hf-datasets: no column {exc} in the data; it has {sorted(row)}.") from exc
        return out


class HFDataset(HFRows, ZooDataset):
    """Rows of a local Hugging Face dataset (map-style)."""

    description = "rows of a local Hugging Face `datasets` dataset (save_to_disk dir or parquet/json/csv files)"
    source = "user-provided Hugging Face datasets files"
    license = "that of the data"

    def __init__(self, split: str = "train", path: Any = None, fields: dict | None = None,
                 labels: dict | None = None, class_names: list[str] | None = None,
                 prompts: list[str] | None = None, cache_dir: str | None = None):
        if path is None:
            raise DataError("hf-datasets needs the option path (a save_to_disk directory or data files).")
        self.setup(fields, labels, class_names, prompts)
        self.split = split
        rows, indices = pick_split(load_hf(path, False, cache_dir), split, False)
        if indices is None:
            self.rows, self.indices = rows, torch.arange(len(rows))            # a named split: all its rows
        else:
            self.rows, self.indices = rows.select(indices.tolist()), indices   # (N_split,) rows of "train"

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.item(self.rows[int(i)])


class HFStream(HFRows, IterableDataset):
    """Rows of a local Hugging Face dataset, streamed (``streaming = true``)."""

    description, source, license = HFDataset.description, HFDataset.source, HFDataset.license

    def __init__(self, split: str, path: Any, fields, labels, class_names, prompts, cache_dir):
        self.setup(fields, labels, class_names, prompts)
        self.split = split
        self.rows, _ = pick_split(load_hf(path, True, cache_dir), split, True)

    def __iter__(self):
        return (self.item(row) for row in self.rows)


def make_hf_dataset(split: str = "train", path: Any = None, fields: dict | None = None, labels: dict | None = None,
                    class_names: list[str] | None = None, prompts: list[str] | None = None,
                    streaming: bool = False, cache_dir: str | None = None):
    """``hf-datasets``: map-style by default; ``streaming=True`` → an iterable dataset."""
    if streaming:
        if path is None:
            raise DataError("hf-datasets needs the option path (a save_to_disk directory or data files).")
        return HFStream(split, path, fields, labels, class_names, prompts, cache_dir)
    return HFDataset(split, path, fields, labels, class_names, prompts, cache_dir)


make_hf_dataset.description = HFDataset.description
