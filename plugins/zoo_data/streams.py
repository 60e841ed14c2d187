"""Generic datasets over data on disk: ``webdataset`` tar shards and Hugging Face ``datasets`` files.

Both are map-style (the trainer samples by index) and follow the Dataset contract; every
field's value goes through its modality's registered ``load`` (images, audio and video from
encoded bytes, text from UTF-8), so items come out in the raw forms. Only local files are read.

``webdataset``: ``urls`` is a local shard path, a brace pattern (``shards/train-{000..009}.tar``)
or a list of them — or a table ``{train = …, test = …}``; with a single set of shards the fixed
80/20 split applies. Members are grouped into samples by key (the member name up to the first
dot of its file name, as webdataset writes them); ``fields`` maps a field to the member
extension(s) holding it, e.g. ``{image = "jpg;png", caption = "txt"}`` (the modality follows from
the extension) or ``{caption = {ext = "json:caption", modality = "text"}}``; ``labels`` maps a
label field to ``"cls"`` or ``"json:<key>"``. Shards are indexed once (tar headers); reads seek.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.checks import require
from zoo.data import ZooDataset
from zoo.errors import DataError
from zoo.plugins import registry

from ._splits import SPLITS, check_split, split_indices

MODALITY_OF_EXT = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"), "image"),
    **dict.fromkeys(("txt", "text", "caption"), "text"),
    **dict.fromkeys(("wav", "flac", "mp3", "ogg"), "audio"),
    **dict.fromkeys(("mp4", "webm", "avi", "mkv", "mov"), "video"),
    **dict.fromkeys(("smi", "smiles"), "molecule"),
    "npy": "vector",
}
TEXT_EXTS = ("txt", "text", "caption", "smi", "smiles")


def decode_member(ext: str, data: bytes) -> Any:
    """Bytes of a tar member → a value the modality's ``load`` accepts (by the extension)."""
    if ext == "json":
        return json.loads(data)
    if ext in ("cls", "cls2", "index"):
        return int(data.decode().strip())
    if ext in TEXT_EXTS:
        return data.decode("utf-8").strip()
    if ext == "npy":
        return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))
    return data


def field_spec(name: str, spec: Any) -> tuple[list[str], str]:
    """``"jpg;png"`` or ``{ext = …, modality = …}`` → (extensions, modality)."""
    if isinstance(spec, str):
        spec = {"ext": spec}
    exts = spec.get("ext", "").split(";") if isinstance(spec, dict) else []
    modality = spec.get("modality") or MODALITY_OF_EXT.get(exts[0]) if exts and exts[0] else None
    if not exts or not exts[0] or modality is None:
        raise DataError(f"webdataset field {name!r}: give the member extension and, unless it is one of "
                        f"{sorted(MODALITY_OF_EXT)}, the modality: {{ext = \"json:caption\", modality = \"text\"}}.")
    return exts, modality


def expand_urls(urls: Any) -> list[Path]:
    braceexpand = require("braceexpand", "data", "the webdataset dataset")
    patterns = [urls] if isinstance(urls, (str, os.PathLike)) else list(urls)
    paths = [Path(p) for pat in patterns for p in braceexpand.braceexpand(os.fspath(pat))]
    remote = [p for p in map(str, paths) if "://" in p]
    if remote:
        raise DataError(f"webdataset reads local shards only, got {remote[0]!r}; download the shards first.")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"webdataset shard {missing[0]} does not exist ({len(missing)} of {len(paths)} missing).")
    return paths


def index_shards(paths: list[Path]) -> list[dict[str, tuple[Path, int, int]]]:
    """Samples in shard order: ``{ext: (shard, data offset, size)}`` per key."""
    samples: dict[str, dict[str, tuple[Path, int, int]]] = {}
    for path in paths:
        try:
            with tarfile.open(path, "r:") as tar:
                for m in tar:
                    if m.isfile():
                        folder, base = os.path.split(m.name)
                        key, _, ext = base.partition(".")
                        samples.setdefault(f"{path}:{folder}/{key}", {})[ext.lower()] = (path, m.offset_data, m.size)
        except tarfile.TarError as exc:
            raise DataError(f"cannot read webdataset shard {path} as an uncompressed tar ({exc}); "
                            f"shards must be plain .tar files (decompress .tar.gz first).") from exc
    return list(samples.values())


def read_member(where: tuple[Path, int, int]) -> bytes:
    path, offset, size = where
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(size)


def select_rows(urls: Any, split: str) -> list[Any]:
    """The split's part of the sources: ``urls[split]`` for a table, else the fixed 80/20 split."""
    if isinstance(urls, dict):
        if split not in urls:
            raise DataError(f"no data for split {split!r}; the given splits are {sorted(urls)}.")
        return urls[split]
    return urls


def load_field(modality: str, value: Any) -> Any:
    return registry().modality(modality).load(value)


class WebDataset(ZooDataset):
    """Samples of local webdataset tar shards, fields decoded by extension and modality ``load``."""

    description = "samples of local webdataset tar shards (fields by member extension), in the raw forms"
    source = "user-provided webdataset shards"
    license = "that of the shards"

    def __init__(self, split: str = "train", urls: Any = None, fields: dict | None = None,
                 labels: dict | None = None, class_names: list[str] | None = None,
                 prompts: list[str] | None = None):
        self.split = check_split("webdataset", split, tuple(urls) if isinstance(urls, dict) else SPLITS)
        if urls is None or not fields:
            raise DataError("webdataset needs options urls (shard paths) and fields, e.g. "
                            "{urls = \"data/train-{000..009}.tar\", fields = {image = \"jpg\", caption = \"txt\"}}.")
        self.specs = {name: field_spec(name, spec) for name, spec in fields.items()}
        self.fields = {name: modality for name, (_, modality) in self.specs.items()}
        self.labels_spec = dict(labels or {})
        self.label_fields = list(self.labels_spec)
        self.class_names, self.prompts = class_names, prompts
        samples = index_shards(expand_urls(select_rows(urls, split)))
        if isinstance(urls, dict):
            self.indices = torch.arange(len(samples))
        else:
            self.indices = split_indices(len(samples), split) if len(samples) > 1 else torch.arange(len(samples))
        self.samples = [samples[i] for i in self.indices.tolist()]

    def __len__(self) -> int:
        return len(self.samples)

    def member(self, sample: dict, exts: list[str], name: str) -> Any:
        for ext in exts:
            base, _, key = ext.partition(":")
            if base in sample:
                value = decode_member(base, read_member(sample[base]))
                return value[key] if key else value
        raise DataError(f"a webdataset sample has no member for field {name!r} (extensions {exts}); "
                        f"it has {sorted(sample)}.")

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = self.samples[i]
        item = {name: load_field(modality, self.member(sample, exts, name))
                for name, (exts, modality) in self.specs.items()}
        for name, ext in self.labels_spec.items():
            item[name] = int(self.member(sample, ext.split(";"), name))
        return item
