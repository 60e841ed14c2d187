"""``digits-groups``: the real 8×8 digits with a coarse level above the digit class.

A two-level hierarchy for multi-level (COMET / BioCLIP-style) objectives: every image keeps
its ``class`` (0–9) and gets a ``group`` by the shape of the written digit,

    group 0 "loops"          0, 6, 8, 9   (closed loops)
    group 1 "strokes"        1, 4, 7      (straight strokes)
    group 2 "open curves"    2, 3, 5

a fixed, hand-made grouping (not learned from the data), so the coarse level is a real
many-to-one map of the fine one. Used by ``benchmarks/reproduce.py --only hierarchical``.
"""
from __future__ import annotations

from typing import Any

from .digits import Digits

GROUP_OF_DIGIT = (0, 1, 2, 2, 1, 2, 0, 1, 0, 0)       # digit → group id
GROUP_NAMES = ("loops", "strokes", "open curves")


class DigitsGroups(Digits):
    """``digits`` plus label ``group`` (3 shape groups of the 10 digits)."""

    label_fields = ["class", "group"]
    group_names = GROUP_NAMES
    description = ("scikit-learn's real 8×8 digits with captions, labelled with the digit class and a coarse "
                   "shape group (loops 0/6/8/9, strokes 1/4/7, open curves 2/3/5); 80/20 seeded split")

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = super().__getitem__(i)
        item["group"] = GROUP_OF_DIGIT[item["class"]]
        return item
