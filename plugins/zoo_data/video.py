"""``moving-digits``: clips of a real digit sliding across a canvas, with captions.

Synthetic clips made from the real scikit-learn digits (the ``digits`` split's images, so
train and test clips never share a digit image). Clip ``i`` shows its digit image, enlarged
``scale``× (nearest neighbour), moving ``step`` pixels per frame in one of four directions on
a black ``size_px``×``size_px`` canvas for ``frames`` frames: raw ``(T, 1, H, W)`` in [0, 1].
The direction and the start position (kept inside the canvas) come from a generator seeded
by (seed, digit row). Caption: "the digit 3 moving left" and other templates; label ``class``
is the digit; items also carry ``direction`` (an index into ``DIRECTIONS``).
"""
from __future__ import annotations

from typing import Any

import torch

from zoo.errors import DataError

from .digits import NUMBER_WORDS, DigitsBase

DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}   # (d_row, d_col)
CAPTION_TEMPLATES = ["the digit {n} moving {d}", "a {w} moving {d}", "a handwritten {w} sliding {d}",
                     "the number {w} drifting {d}"]


class MovingDigits(DigitsBase):
    """Video ``(T, 1, H, W)`` of a moving digit + caption; label ``class`` (0–9), item key ``direction``."""

    name = "moving-digits"
    fields = {"video": "video", "caption": "text"}
    prompts = ["a video of the digit {}", "the number {} moving", "a moving {}"]
    direction_names = list(DIRECTIONS)
    description = ("synthetic 8-frame 32×32 clips of a real scikit-learn digit moving left/right/up/down, "
                   "captioned ('the digit 3 moving left'); the digits' 80/20 split")

    def __init__(self, split: str = "train", size: int | None = None, frames: int = 8, size_px: int = 32,
                 scale: int = 2, step: int = 2, seed: int = 0):
        super().__init__(split, size, "fixed", seed)
        self.frames, self.size_px, self.scale, self.step = frames, size_px, scale, step
        if 8 * scale + step * (frames - 1) > size_px:
            raise DataError(f"moving-digits: a {8 * scale}px digit moving {step}px × {frames - 1} frames does not fit "
                            f"a {size_px}px canvas; lower frames/step/scale or raise size_px.")

    def motion(self, g: torch.Generator) -> tuple[str, int, int]:
        """Direction and start (row, col) so the whole path stays on the canvas."""
        direction = self.direction_names[int(torch.randint(4, (1,), generator=g))]
        d_row, d_col = DIRECTIONS[direction]
        free, travel = self.size_px - 8 * self.scale, self.step * (self.frames - 1)

        def start(d: int) -> int:
            lo, hi = (travel, free) if d < 0 else (0, free - travel) if d > 0 else (0, free)
            return int(torch.randint(lo, hi + 1, (1,), generator=g))
        return direction, start(d_row), start(d_col)

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.indices[i]))
        direction, row, col = self.motion(g)
        d_row, d_col = DIRECTIONS[direction]
        digit = self.images[i].repeat_interleave(self.scale, 1).repeat_interleave(self.scale, 2)  # (1, h, w)
        h = digit.shape[1]
        video = torch.zeros(self.frames, 1, self.size_px, self.size_px)                          # (T, 1, H, W)
        for t in range(self.frames):
            r, c = row + d_row * self.step * t, col + d_col * self.step * t
            video[t, :, r:r + h, c:c + h] = digit
        label = int(self.labels[i])
        template = CAPTION_TEMPLATES[int(torch.randint(len(CAPTION_TEMPLATES), (1,), generator=g))]
        caption = template.format(n=label, w=NUMBER_WORDS[label], d=direction)
        return {"video": video, "caption": caption, "class": label,
                "direction": self.direction_names.index(direction)}
