"""Embedding a whole dataset with a model (for evaluation and pictures)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from zoo.errors import DataError
from zoo.logs import progress_logging


@dataclass
class Embedded:
    """Embeddings of every embeddable field of a dataset split, with its labels and raws."""

    emb: dict[str, torch.Tensor]                      # field -> (N, D), L2-normalised
    labels: dict[str, torch.Tensor]                   # level -> (N,)
    raws: dict[str, list[Any]] = field(default_factory=dict)
    modalities: dict[str, str] = field(default_factory=dict)


def embeddable_fields(model, dataset, fields: list[str] | None = None) -> dict[str, str]:
    """``{field: tower}`` for the fields the model can encode (all of ``fields`` if given)."""
    out = {}
    for f in fields or list(dataset.fields):
        if f not in dataset.fields:
            raise DataError(f"dataset has no field {f!r}; its fields are {list(dataset.fields)}.")
        try:
            out[f] = model.tower_for(f, dataset.fields[f])
        except Exception:  # noqa: BLE001 - a field without a tower is skipped unless asked for
            if fields:
                raise
    if not out:
        raise DataError(f"the model (towers {model.modalities}) encodes none of the dataset's fields "
                        f"{dict(dataset.fields)}.")
    return out


@torch.no_grad()
@progress_logging()
def embed_dataset(model, dataset, fields: list[str] | None = None, batch_size: int = 256,
                  keep_raws: bool = False, progress: bool = False, limit: int | None = None) -> Embedded:
    towers = embeddable_fields(model, dataset, fields)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    was_training = model.training
    model.eval()
    chunks: dict[str, list[torch.Tensor]] = {f: [] for f in towers}
    labels: dict[str, list[int]] = {lv: [] for lv in getattr(dataset, "label_fields", [])}
    raws: dict[str, list[Any]] = {f: [] for f in towers} if keep_raws else {}
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc="embedding", unit="batch"):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        for f, tower in towers.items():
            values = [it[f] for it in items]
            chunks[f].append(model.encode(tower, model.preprocess(tower, values)).float().cpu())
            if keep_raws:
                raws[f].extend(values)
        for lv in labels:
            labels[lv].extend(int(it[lv]) for it in items)
    model.train(was_training)
    return Embedded({f: torch.cat(c) for f, c in chunks.items()},
                    {lv: torch.tensor(v) for lv, v in labels.items()}, raws,
                    {f: dataset.fields[f] for f in towers})
