"""Intra-video negatives: the ``shuffled_frames`` pair strategy.

It is ``paired`` (each chosen field a view, e.g. ``video`` and ``caption``, or use two video
fields) plus one more view, ``<field>_shuffled``: the same (augmented) video with its frames
in a random order drawn from the sample's generator, never the original order. The shuffled
clip has the appearance of its video but not its motion, so it is a hard *intra* negative
next to the *inter* negatives (the other rows of the batch), as in inter–intra contrastive
learning (Tao et al., ACM MM 2020).

The objective ``clip_intra`` (in :mod:`.objective`) uses it as one extra negative column: each
caption must score its own video above every other video *and* above its own shuffled video.
A temporal model that sees frame order (``temporal = "transformer"``) is needed to tell the
two apart; ``temporal = "mean"`` embeds both identically.
"""
from __future__ import annotations

from typing import Any

from zoo.data.pairs import Paired
from zoo.errors import RecipeError

from .augment import shuffle_frames

SUFFIX = "_shuffled"


class ShuffledFrames(Paired):
    """``paired`` views plus ``<field>_shuffled`` (the video of ``field`` with permuted frames)."""

    def __init__(self, field: str = "video", fields: list[str] | None = None,
                 augment: dict[str, list[dict]] | None = None):
        super().__init__(fields=fields, augment=augment)
        self.video_field = field

    def setup(self, dataset_fields: dict[str, str]) -> None:
        super().setup(dataset_fields)
        if self.video_field not in self.chosen():
            raise RecipeError(f"shuffled_frames: field {self.video_field!r} must be one of the paired fields "
                              f"{self.chosen()}; set pairs.options.field to the video field.")
        if dataset_fields[self.video_field] != "video":
            raise RecipeError(f"shuffled_frames: field {self.video_field!r} is {dataset_fields[self.video_field]!r}, "
                              f"not video; set pairs.options.field to a video field.")

    def views_of(self, samples: list[dict[str, Any]], gens) -> dict[str, tuple[str, list[Any]]]:
        views = super().views_of(samples, gens)
        videos = views[self.video_field][1]  # the augmented videos, (T, C, H, W) each
        views[self.video_field + SUFFIX] = ("video", [shuffle_frames(v, g) for v, g in zip(videos, gens)])
        return views
