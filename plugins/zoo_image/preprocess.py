"""An encoder's image preprocessing: channels, resize + centre crop, normalise.

:class:`ImagePreprocess` is a small dataclass (saved as ``preprocess_config()`` with a
checkpoint) that turns raws ``(C, H, W)`` in [0, 1] into the batch a backbone takes::

    pre = ImagePreprocess(image_size=(224, 224), channels=3, mean=OPENAI_MEAN, std=OPENAI_STD)
    batch = pre([load_image("cat.jpg"), load_image("dog.png")])   # (2, 3, 224, 224)

Resizing follows timm's and open_clip's evaluation transforms: ``resize_mode="shortest"``
scales the shorter side to ``size / crop_pct`` (keeping the aspect ratio) and centre-crops
``size``; ``"squash"`` resizes both sides to ``size / crop_pct`` then centre-crops.
Interpolation is antialiased (as torchvision's ``Resize`` on tensors) and clamped to [0, 1].
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.errors import RecipeError, ShapeError

from ._checks import pair
from .io import load_image

INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic")
RESIZE_MODES = ("shortest", "squash")
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as PIL and torchvision
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ImagePreprocess:
    """Raws → ``(B, channels, *image_size)`` normalised; ``image_size=None`` keeps the raw size."""

    image_size: tuple[int, int] | None = None
    channels: int = 3
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    interpolation: str = "bicubic"
    crop_pct: float = 1.0
    resize_mode: str = "shortest"

    def __post_init__(self) -> None:
        self.image_size = pair(self.image_size, "image_size")
        if self.channels not in (1, 3):
            raise RecipeError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}.")
        if self.interpolation not in INTERPOLATIONS:
            raise RecipeError(f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}.")
        if self.resize_mode not in RESIZE_MODES:
            raise RecipeError(f"resize_mode {self.resize_mode!r} is not one of {', '.join(RESIZE_MODES)}.")
        if not 0 < self.crop_pct <= 1:
            raise RecipeError(f"crop_pct must be in (0, 1], got {self.crop_pct}.")
        self.mean = per_channel(self.mean, self.channels, "mean")
        self.std = per_channel(self.std, self.channels, "std")
        if min(self.std) <= 0:
            raise RecipeError(f"std must be positive, got {list(self.std)}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists, not tuples)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def __call__(self, raws: Sequence[Any]) -> Tensor:
        images = [self.transform(load_image(r)) for r in raws]
        shapes = {tuple(im.shape) for im in images}
        if len(shapes) > 1:
            raise ShapeError(f"images of one batch must share a size when image_size is None; got sizes "
                             f"{sorted(shapes)}. Set image_size so the encoder's preprocess resizes them.")
        x = torch.stack(images)  # (B, C, H, W)
        mean = x.new_tensor(self.mean).view(1, -1, 1, 1)
        std = x.new_tensor(self.std).view(1, -1, 1, 1)
        return (x - mean) / std

    def transform(self, img: Tensor) -> Tensor:
        """One raw ``(C, H, W)`` → ``(channels, *image_size)`` in [0, 1] (not yet normalised)."""
        img = to_channels(img, self.channels)
        if self.image_size is None or (tuple(img.shape[1:]) == self.image_size and self.crop_pct == 1):
            return img
        return center_crop(resize(img, self.scale_size(img), self.interpolation), self.image_size)

    def scale_size(self, img: Tensor) -> tuple[int, int]:
        """The size to resize to before the centre crop."""
        th, tw = (math.floor(s / self.crop_pct) for s in self.image_size)
        if self.resize_mode == "squash" or th != tw:
            return th, tw
        h, w = img.shape[-2:]
        short, long = (h, w) if h <= w else (w, h)
        new_long = int(th * long / short)
        return (th, new_long) if h <= w else (new_long, th)


def per_channel(values: float | Sequence[float], channels: int, name: str) -> tuple[float, ...]:
    """One value per channel: a scalar or a 1-list is repeated; RGB values for grey are averaged."""
    vals = (float(values),) if isinstance(values, (int, float)) else tuple(float(v) for v in values)
    if len(vals) == channels:
        return vals
    if len(vals) == 1:
        return vals * channels
    if len(vals) == 3 and channels == 1:
        return (sum(vals) / 3,)
    raise RecipeError(f"{name} needs 1 or {channels} values for {channels} channel(s), got {list(vals)}.")


def to_channels(img: Tensor, channels: int) -> Tensor:
    """``(C, H, W)`` → ``(channels, H, W)``: grey is repeated to RGB; RGB becomes luma for grey."""
    c = img.shape[0]
    if c == channels:
        return img
    if c == 1 and channels == 3:
        return img.expand(3, -1, -1)
    if c == 3 and channels == 1:
        w = img.new_tensor(GREY_WEIGHTS).view(3, 1, 1)
        return (img * w).sum(0, keepdim=True)
    raise ShapeError(f"cannot convert a {c}-channel image to {channels} channel(s); expected 1 or 3 channels.")


def resize(img: Tensor, size: tuple[int, int], interpolation: str = "bilinear") -> Tensor:
    """``(C, H, W)`` → ``(C, *size)``, antialiased when shrinking, clamped to [0, 1]."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    smooth = interpolation in ("bilinear", "bicubic")
    out = F.interpolate(img.unsqueeze(0), size=size, mode=interpolation,
                        align_corners=False if smooth else None, antialias=smooth)[0]
    return out.clamp_(0.0, 1.0) if interpolation == "bicubic" else out


def center_crop(img: Tensor, size: tuple[int, int]) -> Tensor:
    """The central ``size`` window of ``(C, H, W)`` (zero-padded if the image is smaller)."""
    th, tw = size
    h, w = img.shape[-2:]
    if h < th or w < tw:
        ph, pw = max(th - h, 0), max(tw - w, 0)
        img = F.pad(img, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        h, w = img.shape[-2:]
    top, left = round((h - th) / 2.0), round((w - tw) / 2.0)
    return img[:, top:top + th, left:left + tw]


class PreprocessMixin:
    """``preprocess`` / ``preprocess_config`` of an image encoder that holds an :class:`ImagePreprocess`
    as ``self.preprocessor`` (list it before ``nn.Module`` in the bases)."""

    preprocessor: ImagePreprocess

    def preprocess(self, raws: Sequence[Any]) -> Tensor:
        return self.preprocessor(raws)  # (B, C, H, W)

    def preprocess_config(self) -> dict[str, Any]:
        return self.preprocessor.to_dict()
