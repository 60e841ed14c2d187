"""Video augmentations on raws ``(T, C, H, W)``, each seeded by the generator.

Spatial augmentations draw one set of parameters per video and apply it to every frame, so
motion stays coherent. ``make(**kw) -> apply(raw, generator) -> raw``.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.errors import RecipeError

from .io import frame_indices

Aug = Callable[[Tensor, torch.Generator], Tensor]


def _rand(g: torch.Generator) -> float:
    return torch.rand((), generator=g).item()


def temporal_crop(num_frames: int = 8) -> Aug:
    """``num_frames`` consecutive frames from a random start (the ``random_clip`` sampling);
    a shorter video repeats its last frame."""
    if num_frames < 1:
        raise RecipeError(f"temporal_crop: num_frames must be ≥ 1, got {num_frames}.")

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        return raw[frame_indices(raw.shape[0], num_frames, "random_clip", g)]

    return apply


def frame_drop(p: float = 0.25) -> Aug:
    """Drop each frame with probability ``p`` (keeping at least one), then re-sample the kept
    frames uniformly back to the original length T."""
    if not 0 <= p < 1:
        raise RecipeError(f"frame_drop: p must be in [0, 1), got {p}.")

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        t = raw.shape[0]
        kept = (torch.rand(t, generator=g) >= p).nonzero().flatten()  # (K,)
        if kept.numel() == 0:
            kept = torch.randint(t, (1,), generator=g)
        return raw[kept[frame_indices(kept.numel(), t)]]  # (T, C, H, W)

    return apply


def spatial_crop(scale: tuple[float, float] = (0.5, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Aug:
    """Random-resized crop: one box (area fraction in ``scale``, aspect in ``ratio``) for all
    frames, resized back to the original H × W (bilinear)."""
    if not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
        raise RecipeError(f"spatial_crop: need 0 < scale[0] ≤ scale[1] ≤ 1 and 0 < ratio[0] ≤ ratio[1]; "
                          f"got scale={scale}, ratio={ratio}.")

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        h, w = raw.shape[-2:]
        area = (scale[0] + (scale[1] - scale[0]) * _rand(g)) * h * w
        aspect = math.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * _rand(g))
        ch = min(h, max(1, round(math.sqrt(area / aspect))))
        cw = min(w, max(1, round(math.sqrt(area * aspect))))
        top = int(torch.randint(h - ch + 1, (), generator=g))
        left = int(torch.randint(w - cw + 1, (), generator=g))
        crop = raw[..., top:top + ch, left:left + cw]  # (T, C, ch, cw)
        return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)

    return apply


def hflip(p: float = 0.5) -> Aug:
    """Mirror every frame left–right with probability ``p`` (one draw per video)."""
    if not 0 <= p <= 1:
        raise RecipeError(f"hflip: p must be in [0, 1], got {p}.")

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        return raw.flip(-1) if _rand(g) < p else raw

    return apply


def shuffle_frames(raw: Tensor, g: torch.Generator) -> Tensor:
    """The frames in a random order that is never the original one (for T ≥ 2)."""
    t = raw.shape[0]
    perm = torch.randperm(t, generator=g)
    if t > 1 and torch.equal(perm, torch.arange(t)):
        perm = perm.roll(1)
    return raw[perm]


AUGMENTATIONS = {
    "temporal_crop": (temporal_crop, "num_frames consecutive frames at a random start (random clip)"),
    "frame_drop": (frame_drop, "drop frames with probability p, re-sample to keep T"),
    "spatial_crop": (spatial_crop, "random-resized crop, one box for all frames"),
    "hflip": (hflip, "horizontal flip of all frames with probability p"),
}
