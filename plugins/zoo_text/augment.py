"""Word-level text augmentations from the sentence-embedding literature.

Each ``make(**options)`` returns ``apply(text, generator) -> text``; all randomness comes from
the ``torch.Generator``, so a view is a function of (text, seed) only. Words are the
whitespace-separated pieces of the text, re-joined with single spaces.

- ``word_deletion`` (alias ``word_dropout``): drop each word with probability ``p`` (keeps one).
- ``word_swap``: swap ``n_swaps`` randomly chosen pairs of adjacent words.
- ``word_repetition``: ESimCSE (Wu et al. 2022) — duplicate ``k`` random words in place, with
  ``k`` uniform in ``0 .. max(2, int(dup_rate · len))``, so the two views differ in length
  without changing their meaning.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from zoo.errors import RecipeError

Augmentation = Callable[[str, torch.Generator], str]


def _check_prob(name: str, value: float, high_open: bool = True) -> None:
    if not (0.0 <= value < 1.0 if high_open else 0.0 <= value <= 1.0):
        raise RecipeError(f"{name} must be in [0, 1{')' if high_open else ']'}, got {value}.")


def word_deletion(p: float = 0.1) -> Augmentation:
    """Delete each word with probability ``p``; a text never loses all its words."""
    _check_prob("word_deletion: p", p)

    def apply(text: str, generator: torch.Generator) -> str:
        words = text.split()
        if len(words) < 2:
            return " ".join(words)
        keep = torch.rand(len(words), generator=generator) >= p  # (W,)
        if not keep.any():
            keep[torch.randint(len(words), (1,), generator=generator)] = True
        return " ".join(w for w, k in zip(words, keep.tolist()) if k)

    return apply


def word_swap(n_swaps: int = 1) -> Augmentation:
    """Swap ``n_swaps`` random adjacent pairs (position ``i`` with ``i + 1``), one after another."""
    if n_swaps < 0:
        raise RecipeError(f"word_swap: n_swaps must be ≥ 0, got {n_swaps}.")

    def apply(text: str, generator: torch.Generator) -> str:
        words = text.split()
        if len(words) < 2:
            return " ".join(words)
        for i in torch.randint(len(words) - 1, (n_swaps,), generator=generator).tolist():
            words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)

    return apply


def word_repetition(dup_rate: float = 0.32) -> Augmentation:
    """ESimCSE word repetition: duplicate ``k ~ U{0 … max(2, ⌊dup_rate·W⌋)}`` distinct words.

    Paper default ``dup_rate = 0.32`` (Wu et al. 2022, "ESimCSE", COLING, arXiv:2109.04380).
    """
    _check_prob("word_repetition: dup_rate", dup_rate, high_open=False)

    def apply(text: str, generator: torch.Generator) -> str:
        words = text.split()
        if not words:
            return ""
        high = max(2, int(dup_rate * len(words)))
        k = min(int(torch.randint(high + 1, (1,), generator=generator)), len(words))
        dup = set(torch.randperm(len(words), generator=generator)[:k].tolist())
        return " ".join(piece for i, w in enumerate(words) for piece in ((w, w) if i in dup else (w,)))

    return apply
