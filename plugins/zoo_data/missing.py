"""Rows with a missing modality: the ``binary-xor-missing`` dataset and the ``paired_masked`` strategy.

``binary-xor-missing`` is ``binary-xor`` where a seeded fraction ``missing`` of the rows lack
field ``field`` (default the XOR field ``c``). A missing value is a zero vector (the tower
still needs an input) and the item says which fields are present under ``"present"``
(``{field: bool}``). With ``drop = true`` the incomplete rows are left out instead — the
baseline Symile's missing-data experiment compares against. The test split is never thinned
(``missing`` applies to ``train`` only), so every variant is scored on the same rows.

``paired_masked`` is ``paired`` plus the batch's mask ``{view: (B,) bool}`` (True = present)
read from each item's ``"present"``; objectives that take a mask (``symile``) ignore the
missing embeddings. Items without ``"present"`` count as complete.
"""
from __future__ import annotations

from typing import Any

import torch

from zoo import hookimpl
from zoo.data.pairs import Paired, RawViews
from zoo.errors import RecipeError

from .xor import BinaryXOR


class BinaryXORMissing(BinaryXOR):
    """``binary-xor`` with field ``field`` missing in a fraction ``missing`` of the training rows."""

    description = ("Symile's binary-XOR task with one modality missing in a seeded fraction of the training rows "
                   "(zero vector + a presence flag, or the rows dropped); test split complete")

    def __init__(self, split: str = "train", missing: float = 0.5, field: str = "c", drop: bool = False,
                 missing_seed: int = 0, **kw: Any):
        super().__init__(split=split, **kw)
        if not 0.0 <= missing < 1.0:
            raise RecipeError(f"binary-xor-missing: missing is the fraction of rows without {field!r}, in [0, 1); "
                             f"got {missing}.")
        if field not in self.fields:
            raise RecipeError(f"binary-xor-missing: field {field!r} is not one of {list(self.fields)}.")
        self.missing_field = field
        n = len(self.indices)
        absent = torch.zeros(n, dtype=torch.bool)                                   # (N_split,)
        if split == "train" and missing > 0:
            g = torch.Generator().manual_seed(missing_seed)
            absent[torch.randperm(n, generator=g)[: round(missing * n)]] = True
        keep = ~absent if drop else torch.ones(n, dtype=torch.bool)
        self.indices, self.labels = self.indices[keep], self.labels[keep]
        self.data = {name: col[keep] for name, col in self.data.items()}
        self.absent = absent[keep]                                                  # (N_kept,)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = super().__getitem__(i)
        present = not bool(self.absent[i])
        if not present:
            item[self.missing_field] = torch.zeros_like(item[self.missing_field])
        item["present"] = {f: (present or f != self.missing_field) for f in self.fields}
        return item


class PairedMasked(Paired):
    """``paired`` plus ``mask = {view: (B,) bool}`` from each item's ``"present"`` (True = present)."""

    def pair(self, samples, label_fields, gens) -> RawViews:
        raw = super().pair(samples, label_fields, gens)
        raw.mask = {f: torch.tensor([bool(s.get("present", {}).get(f, True)) for s in samples])
                    for f in raw.views}
        return raw


@hookimpl
def zoo_register_pair_strategies(register):
    register("paired_masked", PairedMasked,
             description="paired views plus a per-view presence mask from each item's 'present' (missing modalities)")
