"""The ``supervised_simcse`` pair strategy: (anchor, positive, hard negative) triplets of text fields.

Supervised SimCSE (Gao et al. 2021, §4) trains on NLI triplets: a premise (anchor), a hypothesis
it entails (positive) and one it contradicts (hard negative). The strategy emits three views,
``anchor``, ``positive`` and ``negative``, all encoded by the text tower; the ``simcse_sup``
objective (:mod:`zoo_text.objectives`) contrasts each anchor with every positive *and* every hard
negative of the batch. ``clip`` takes exactly two views, so it fits only with ``negative = ""``.
"""
from __future__ import annotations

from typing import Any

from zoo.data.pairs import PairStrategy

ROLES = ("anchor", "positive", "negative")


class TextTriplets(PairStrategy):
    """Views ``anchor``/``positive``/``negative`` from three dataset fields.

    Options: ``anchor``, ``positive``, ``negative`` — the dataset fields of each role (defaults:
    fields named like the roles; ``negative = ""`` for pairs without hard negatives), and
    ``augment = {field: [{name = …}]}`` as for every strategy.
    """

    def __init__(self, anchor: str = "anchor", positive: str = "positive", negative: str | None = "negative",
                 augment: dict[str, list[dict]] | None = None):
        chosen = [anchor, positive] + ([negative] if negative else [])
        super().__init__(fields=chosen, augment=augment)
        self.roles = dict(zip(ROLES, chosen))  # role -> dataset field

    def views_of(self, samples: list[dict[str, Any]], gens) -> dict[str, tuple[str, list[Any]]]:
        return {role: (self.dataset_fields[f], self.augment_all(f, [s[f] for s in samples], gens))
                for role, f in self.roles.items()}
