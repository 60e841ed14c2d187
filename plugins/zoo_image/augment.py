"""Image augmentations: ``make(**kw) -> apply(raw, generator) -> raw``, raws ``(C, H, W)`` in [0, 1].

torchvision's v2 transform *classes* draw their random parameters from the global RNG, so
they cannot be made deterministic per sample without touching global state (forking and
reseeding it is not thread-safe and hides the dependency). Here every random parameter is
drawn from the ``torch.Generator`` passed in, with the same distributions as the v2
classes, and the image work is done by the stateless ``torchvision.transforms.v2.functional``
kernels. The same generator state therefore always gives the same view.

Names: ``random_resized_crop``, ``hflip``, ``color_jitter``, ``grayscale``, ``gaussian_blur``,
``solarize``, and the presets ``simclr`` (Chen et al., 2020, appendix A) and ``clip`` (the
random square crop CLIP trains with; open_clip's ``scale=(0.9, 1.0)``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from zoo.checks import require
from zoo.data.pairs import augment_batch
from zoo.errors import RecipeError

from ._checks import check_probability, check_range, pair
from .preprocess import INTERPOLATIONS

Augment = Callable[[Tensor, torch.Generator], Tensor]


def _F() -> Any:
    return require("torchvision.transforms.v2.functional", "image", "image augmentations")


# -- parameters drawn from the generator ---------------------------------------------------------
def uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def coin(g: torch.Generator, p: float) -> bool:
    """True with probability ``p`` (always draws one number, so later draws do not depend on ``p``)."""
    return float(torch.rand((), generator=g)) < p


def randint(g: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in ``[lo, hi]`` (inclusive)."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


def crop_box(g: torch.Generator, h: int, w: int, scale: tuple[float, float],
             ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of a random crop covering ``scale`` of the area with aspect in ``ratio``
    (ten tries, then a centre crop at the closest allowed aspect, as Inception-style cropping)."""
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        area = h * w * uniform(g, *scale)
        aspect = math.exp(uniform(g, *log_ratio))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return randint(g, 0, h - ch), randint(g, 0, w - cw), ch, cw
    aspect = w / h
    if aspect < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif aspect > ratio[1]:
        cw, ch = round(h * ratio[1]), h
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def factor_range(value: float | Sequence[float], name: str, center: float = 1.0,
                 bound: float = float("inf")) -> tuple[float, float] | None:
    """``0.4`` → ``(0.6, 1.4)`` (``center ± value``, clipped at 0 for multiplicative factors); ``None`` if no-op."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise RecipeError(f"{name} must be ≥ 0, got {value}.")
        lo_hi = (max(center - value, 0.0) if center else -value, center + value)
    else:
        lo_hi = check_range(value, name, low=-bound if not center else 0.0, high=bound)
    return None if lo_hi == (center, center) else lo_hi


# -- single augmentations -------------------------------------------------------------------------
def random_resized_crop(size: int | Sequence[int] | None = None, scale: Sequence[float] = (0.08, 1.0),
                        ratio: Sequence[float] = (3 / 4, 4 / 3), interpolation: str = "bilinear") -> Augment:
    """Crop a random area fraction ``scale`` with aspect ``ratio``, resize to ``size`` (default: the input size)."""
    out_size, scale = pair(size, "size"), check_range(scale, "scale", 0.0, 1.0)
    ratio = check_range(ratio, "ratio", 1e-6)
    if scale[1] <= 0:
        raise RecipeError(f"scale must allow a non-empty crop, got {list(scale)}.")
    if interpolation not in INTERPOLATIONS:
        raise RecipeError(f"interpolation {interpolation!r} is not one of {', '.join(INTERPOLATIONS)}.")

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        h, w = raw.shape[-2:]
        top, left, ch, cw = crop_box(g, h, w, scale, ratio)
        out = _F().resized_crop(raw, top, left, ch, cw, list(out_size or (h, w)), interpolation=interpolation,
                                antialias=True)
        return out.clamp_(0.0, 1.0)  # bicubic overshoots

    return apply


def hflip(p: float = 0.5) -> Augment:
    """Mirror left–right with probability ``p``."""
    p = check_probability(p)

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        return _F().horizontal_flip(raw) if coin(g, p) else raw

    def batch(raws: list[Tensor], gens) -> list[Tensor]:
        """``apply`` per raw, bit for bit: one coin per sample from its generator, then the chosen images of one
        size mirrored in one op (a flip copies values; it computes none)."""
        chosen = [k for k in range(len(raws)) if coin(gens[k], p)]
        out = list(raws)
        if len({raws[k].shape for k in chosen}) > 1:  # images of several sizes: one at a time
            for k in chosen:
                out[k] = _F().horizontal_flip(raws[k])
            return out
        if chosen:
            for k, flipped in zip(chosen, torch.stack([raws[k] for k in chosen]).flip(-1).unbind(0)):
                out[k] = flipped
        return out

    apply.batch = batch
    return apply


def color_jitter(brightness: float | Sequence[float] = 0.4, contrast: float | Sequence[float] = 0.4,
                 saturation: float | Sequence[float] = 0.4, hue: float | Sequence[float] = 0.1,
                 p: float = 1.0) -> Augment:
    """With probability ``p``, jitter brightness, contrast, saturation and hue in a random order."""
    p = check_probability(p)
    ranges = {"brightness": factor_range(brightness, "brightness"), "contrast": factor_range(contrast, "contrast"),
              "saturation": factor_range(saturation, "saturation"), "hue": factor_range(hue, "hue", 0.0, 0.5)}
    if ranges["hue"] and max(map(abs, ranges["hue"])) > 0.5:
        raise RecipeError(f"hue must be within [-0.5, 0.5], got {hue}.")
    kernels = ("adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue")

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        if not coin(g, p):
            return raw
        order = torch.randperm(4, generator=g).tolist()
        factors = [uniform(g, *r) if r else None for r in ranges.values()]
        F = _F()
        for i in order:
            if factors[i] is not None:
                raw = getattr(F, kernels[i])(raw, factors[i])
        return raw.clamp(0.0, 1.0)  # the hue round trip through HSV can leave 1 + ε

    return apply


def grayscale(p: float = 0.2) -> Augment:
    """With probability ``p``, replace the colours by their luma (the channel count is kept)."""
    p = check_probability(p)

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        if not coin(g, p) or raw.shape[0] == 1:
            return raw
        return _F().rgb_to_grayscale(raw, num_output_channels=raw.shape[0]).clamp(0.0, 1.0)  # luma: 1 + ε

    return apply


def gaussian_blur(kernel_size: int | None = None, sigma: Sequence[float] = (0.1, 2.0), p: float = 0.5) -> Augment:
    """With probability ``p``, blur with σ ~ U(sigma); ``kernel_size`` default: 10% of the shorter side, odd."""
    p, sigma = check_probability(p), check_range(sigma, "sigma", 1e-6)
    if kernel_size is not None and (kernel_size < 1 or kernel_size % 2 == 0):
        raise RecipeError(f"kernel_size must be a positive odd int, got {kernel_size}.")

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        if not coin(g, p):
            return raw
        s = uniform(g, *sigma)
        k = kernel_size or default_kernel(min(raw.shape[-2:]))
        return _F().gaussian_blur(raw, [k, k], [s, s]).clamp_(0.0, 1.0)  # kernel sums to 1 ± ε

    return apply


def default_kernel(side: int) -> int:
    """10% of the side, rounded to an odd size ≥ 3 and smaller than the side (reflect padding)."""
    k = max(3, int(0.1 * side) // 2 * 2 + 1)
    return min(k, max(1, (side - 1) // 2 * 2 + 1))


def solarize(threshold: float = 0.5, p: float = 0.2) -> Augment:
    """With probability ``p``, invert the values above ``threshold`` (BYOL's solarisation)."""
    p = check_probability(p)
    if not 0.0 <= threshold <= 1.0:
        raise RecipeError(f"threshold must be in [0, 1] for images in [0, 1], got {threshold}.")

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        return _F().solarize(raw, threshold) if coin(g, p) else raw

    return apply


# -- presets --------------------------------------------------------------------------------------
def chain(*augments: Augment) -> Augment:
    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        for aug in augments:
            raw = aug(raw, g)
        return raw

    def batch(raws: list[Tensor], gens) -> list[Tensor]:  # the same views, step by step over the batch
        return augment_batch(augments, raws, gens)

    apply.batch = batch
    return apply


def simclr(size: int | Sequence[int] | None = None, strength: float = 1.0, scale: Sequence[float] = (0.08, 1.0),
           blur: bool = True) -> Augment:
    """SimCLR's views (Chen et al., 2020, appendix A): random resized crop, flip p=0.5, colour jitter
    (0.8s, 0.8s, 0.8s, 0.2s) p=0.8, greyscale p=0.2, Gaussian blur σ∈[0.1, 2] p=0.5 (``blur=False`` for CIFAR)."""
    if strength < 0:
        raise RecipeError(f"strength must be ≥ 0, got {strength}.")
    s = strength
    steps = [random_resized_crop(size, scale=scale), hflip(0.5),
             color_jitter(0.8 * s, 0.8 * s, 0.8 * s, min(0.2 * s, 0.5), p=0.8), grayscale(0.2)]
    return chain(*steps, *([gaussian_blur(p=0.5)] if blur else []))


def clip(size: int | Sequence[int] | None = None, scale: Sequence[float] = (0.9, 1.0),
         interpolation: str = "bicubic") -> Augment:
    """CLIP's only training augmentation: a random (nearly full) crop resized back, bicubic."""
    return random_resized_crop(size, scale=scale, interpolation=interpolation)


AUGMENTATIONS: dict[str, tuple[Callable[..., Augment], str]] = {
    "random_resized_crop": (random_resized_crop, "random area/aspect crop resized to size (Inception-style)"),
    "hflip": (hflip, "horizontal flip with probability p"),
    "color_jitter": (color_jitter, "brightness/contrast/saturation/hue jitter in random order"),
    "grayscale": (grayscale, "greyscale with probability p (channels kept)"),
    "gaussian_blur": (gaussian_blur, "Gaussian blur, sigma ~ U(0.1, 2), kernel 10% of the side"),
    "solarize": (solarize, "invert values above a threshold with probability p (BYOL)"),
    "simclr": (simclr, "SimCLR preset: crop, flip, colour jitter p=0.8, greyscale p=0.2, blur p=0.5"),
    "clip": (clip, "CLIP preset: random crop scale (0.9, 1.0), bicubic"),
}
