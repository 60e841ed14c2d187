"""``digits``: scikit-learn's 1,797 real 8×8 handwritten digits with generated captions.

Images are the UCI "Optical Recognition of Handwritten Digits" test set that scikit-learn
ships (``sklearn.datasets.load_digits``), values 0–16 scaled to [0, 1] → ``(1, 8, 8)``.
Each image gets a caption from one of :data:`CAPTION_TEMPLATES`; the template of sample
``i`` is a fixed seeded choice (``captions="fixed"``) or re-drawn each epoch
(``captions="epoch"``; call ``set_epoch(e)``, seeded by (seed, epoch, i)).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from zoo.checks import require
from zoo.data import ZooDataset
from zoo.errors import DataError

from ._splits import check_split, limit, split_indices

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

# {w}: the number as a word, {n}: as a numeral.
CAPTION_TEMPLATES = [
    "a photo of the number {w}",
    "handwritten {n}",
    "the digit {n}",
    "a hand-written {w}",
    "an image of the digit {w}",
    "a small blurry picture of a {n}",
    "the number {w}, written by hand",
    "a scanned {w}",
]
PROMPTS = ["a photo of the number {}", "the digit {}", "a hand-written {}", "an image of the digit {}"]

DIGITS_SOURCE = ("UCI ML hand-written digits (Alpaydin & Kaynak, 1998), as shipped in scikit-learn "
                 "(sklearn.datasets.load_digits)")
DIGITS_LICENSE = "CC BY 4.0 (UCI Machine Learning Repository)"


@lru_cache(maxsize=1)
def load_sklearn_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits: images ``(N, 1, 8, 8)`` float in [0, 1] and labels ``(N,)`` long."""
    datasets = require("sklearn.datasets", "data", "the digits datasets", package="scikit-learn")
    bunch = datasets.load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    return images, torch.as_tensor(bunch.target, dtype=torch.long)


def caption_for(label: int, template: int) -> str:
    return CAPTION_TEMPLATES[template].format(w=NUMBER_WORDS[label], n=label)


def template_choice(seed: int, epoch: int | None, index: int) -> int:
    """Which caption template sample ``index`` uses (a function of seed, epoch and index only)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + (epoch or 0) * 7_919 + index)
    return int(torch.randint(len(CAPTION_TEMPLATES), (1,), generator=g))


class DigitsBase(ZooDataset):
    """Shared state of the digit datasets: the split's rows and their captions."""

    name = "digits"
    label_fields = ["class"]
    class_names = NUMBER_WORDS
    prompts = PROMPTS
    source = DIGITS_SOURCE
    license = DIGITS_LICENSE

    def __init__(self, split: str = "train", size: int | None = None, captions: str = "fixed", seed: int = 0):
        self.split = check_split(self.name, split)
        if captions not in ("fixed", "epoch"):
            raise DataError(f"{self.name}: captions must be 'fixed' or 'epoch', got {captions!r}.")
        images, labels = load_sklearn_digits()
        self.indices = limit(split_indices(len(labels), split), size)   # (N_split,) global ids
        self.images, self.labels = images[self.indices], labels[self.indices]
        self.captions, self.seed, self.epoch = captions, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """With ``captions="epoch"``, re-draw the caption templates for this epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def caption(self, i: int) -> str:
        epoch = self.epoch if self.captions == "epoch" else None
        return caption_for(int(self.labels[i]), template_choice(self.seed, epoch, int(self.indices[i])))


class Digits(DigitsBase):
    """Real 8×8 digit images ``(1, 8, 8)`` + a caption; label ``class`` (0–9)."""

    fields = {"image": "image", "caption": "text"}
    description = ("scikit-learn's 1,797 real 8×8 handwritten digits (1×8×8 in [0, 1]) with template "
                   "captions ('a photo of the number seven'); 80/20 seeded split")

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "caption": self.caption(i), "class": int(self.labels[i])}
