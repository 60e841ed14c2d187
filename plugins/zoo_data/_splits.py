"""Shared helpers: the fixed seeded train/test split and split checks (optional imports: :func:`zoo.checks.require`).

Every built-in dataset of a fixed size uses :func:`split_indices`: a permutation of
``range(n)`` drawn from ``torch.Generator().manual_seed(SPLIT_SEED)``; the first 80 % of it
is ``"train"``, the rest ``"test"``. The split never depends on the dataset's other options.
"""
from __future__ import annotations

import torch

from zoo.errors import DataError, RecipeError

SPLITS = ("train", "test")
SPLIT_SEED = 20240601
TEST_FRACTION = 0.2


def check_split(name: str, split: str, splits: tuple[str, ...] = SPLITS) -> str:
    if split not in splits:
        raise DataError(f"dataset {name!r} has no split {split!r}; the valid splits are {list(splits)}.")
    return split


def split_indices(n: int, split: str, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED) -> torch.Tensor:
    """The indices (sorted) of ``split`` among ``n`` items: a fixed seeded 80/20 partition."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, round(n * test_fraction))
    part = perm[n_test:] if split == "train" else perm[:n_test]
    return part.sort().values  # (n_split,)


def limit(indices: torch.Tensor, size: int | None) -> torch.Tensor:
    """The first ``size`` indices (all when ``size`` is None); for small test runs."""
    if size is None:
        return indices
    if size < 1:
        raise RecipeError(f"size must be ≥ 1 (or None for the whole split), got {size}.")
    return indices[:size]


def check_fraction(name: str, test_fraction: float) -> float:
    if not 0 < test_fraction < 1:
        raise DataError(f"dataset {name!r}: test_fraction must be between 0 and 1 (e.g. 0.2), got {test_fraction}.")
    return test_fraction


def prompt_templates(name: str, templates: list[str]) -> list[str]:
    """``"a photo of a {label}"`` → ``"a photo of a {}"`` for ``str.format`` (other braces escaped)."""
    for t in templates:
        if "{label}" not in t:
            raise DataError(f"dataset {name!r}: the template {t!r} has no {{label}}; write e.g. "
                            f"\"a photo of a {{label}}\".")
    return [t.replace("{", "{{").replace("}", "}}").replace("{{label}}", "{}") for t in templates]


def split_seed(seed: int, split: str) -> int:
    """Seed of a synthetic split: train and test draw from disjoint streams."""
    return seed * 2 + (0 if split == "train" else 1)
