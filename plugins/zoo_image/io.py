"""The ``image`` modality: reading any accepted input into the raw form, and stacking raws.

Raw form: a ``torch.float32`` tensor ``(C, H, W)`` with values in [0, 1] and ``C`` 1 (grey)
or 3 (RGB). :func:`load_image` accepts

- a path (``str`` / ``os.PathLike``) or encoded ``bytes``: decoded with Pillow, EXIF rotation
  applied, alpha dropped, 16-bit images scaled by 1/65535;
- a ``PIL.Image.Image``;
- a numpy array ``(H, W)`` or ``(H, W, C)`` (channels last): ``uint8`` is divided by 255,
  ``uint16`` by 65535, floats must already lie in [0, 1];
- a tensor ``(H, W)`` or ``(C, H, W)`` (channels first), same dtype rules.

It is idempotent: a raw goes through unchanged (same object).
"""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.checks import require
from zoo.errors import DataError, ShapeError

CHANNELS = (1, 3)
_DROP_ALPHA = {2: 1, 4: 3}          # grey+alpha → grey, RGBA → RGB
_SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N")
_GREY = ("1", "L", "LA", "La", "PA") + _SIXTEEN_BIT
_INT_SCALE = {torch.uint8: 255.0, torch.uint16: 65535.0}
_TOL = 1e-3                         # float images may overshoot [0, 1] by this much (resampling); clamped


def load_image(value: Any) -> Tensor:
    """Any accepted input → ``(C, H, W)`` float32 in [0, 1] (see the module docstring)."""
    if isinstance(value, Tensor):
        return from_tensor(value)
    if isinstance(value, np.ndarray):
        return from_array(value)
    if isinstance(value, (str, os.PathLike)):
        return from_path(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return from_bytes(bytes(value))
    if type(value).__module__.startswith("PIL.") and hasattr(value, "mode"):
        return from_pil(value)
    raise DataError(f"image modality: cannot read a {type(value).__name__} as an image. Give a file path, a PIL "
                    f"image, a numpy array (H, W) or (H, W, C), or a tensor (C, H, W).")


def from_tensor(t: Tensor, what: str = "tensor") -> Tensor:
    if t.dim() == 2:
        t = t.unsqueeze(0)  # (H, W) -> (1, H, W)
    if t.dim() != 3 or t.shape[0] not in (*CHANNELS, *_DROP_ALPHA) or 0 in t.shape:
        raise ShapeError(f"image modality: expected a {what} of shape (C, H, W) with C in 1, 2, 3, 4 (or (H, W)), "
                         f"got {tuple(t.shape)}. Channels-last arrays go in as numpy (H, W, C).")
    if t.shape[0] in _DROP_ALPHA:
        t = t[: _DROP_ALPHA[t.shape[0]]]  # (C, H, W), alpha dropped
    return _to_unit_float(t.detach() if t.requires_grad else t, what)


def from_array(a: np.ndarray) -> Tensor:
    if a.ndim == 2:
        a = a[:, :, None]  # (H, W) -> (H, W, 1)
    if a.ndim != 3 or a.shape[2] not in (*CHANNELS, *_DROP_ALPHA):
        raise ShapeError(f"image modality: expected a numpy array (H, W) or (H, W, C) with C in 1, 2, 3, 4, got "
                         f"{a.shape}. For a channels-first (C, H, W) array pass torch.from_numpy(array).")
    if a.dtype == np.uint16:  # torch has limited uint16 support: scale here
        a = a.astype(np.float32) / 65535.0
    return from_tensor(torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1), what="numpy array")


def _to_unit_float(t: Tensor, what: str) -> Tensor:
    if t.dtype == torch.bool:
        return t.float()
    if t.dtype in _INT_SCALE:
        return t.float() / _INT_SCALE[t.dtype]
    if not t.is_floating_point():
        raise DataError(f"image modality: unsupported {what} dtype {t.dtype}; use uint8, uint16 or float in [0, 1].")
    t = t.float()
    lo, hi = (float(v) for v in t.aminmax())  # Python floats: each tensor comparison below would cost µs
    if lo < -_TOL or hi > 1 + _TOL:
        raise DataError(f"image modality: a float {what} must hold values in [0, 1], got [{lo:.4g}, {hi:.4g}]. "
                        f"Divide 0–255 values by 255 (or pass uint8).")
    return t.clamp(0.0, 1.0) if lo < 0 or hi > 1 else t


def from_pil(img: Any) -> Tensor:
    if img.mode in _SIXTEEN_BIT:
        a = np.array(img, dtype=np.float32) / 65535.0  # (H, W)
    else:
        a = np.array(img.convert("L" if img.mode in _GREY else "RGB"))  # (H, W) or (H, W, 3) uint8
    return from_array(a)


def from_bytes(data: bytes, name: str = "<bytes>") -> Tensor:
    return _decode(io.BytesIO(data), name)


def from_path(path: str | os.PathLike) -> Tensor:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"image file {path!r} does not exist; check the path (relative paths start at "
                        f"{os.getcwd()}).")
    if os.path.isdir(path):
        raise DataError(f"image file {path!r} is a directory, not an image file.")
    return _decode(path, path)


def _decode(source: Any, name: str) -> Tensor:
    Image = require("PIL.Image", "image", "reading image files", package="pillow")
    ImageOps = require("PIL.ImageOps", "image", "reading image files", package="pillow")
    try:
        with Image.open(source) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as exc:  # a header declaring far more pixels than any real image
        raise DataError(f"image file {name!r} is refused as a decompression bomb: {exc} If the file is yours and "
                        f"really that large, raise Pillow's limit first (PIL.Image.MAX_IMAGE_PIXELS = <pixels>) or "
                        f"downscale it; otherwise drop it from the dataset.") from exc
    except Image.UnidentifiedImageError as exc:
        raise DataError(f"image file {name!r} cannot be read: not an image format Pillow recognises ({exc}).") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # truncated, corrupt, unreadable
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataError(f"image file {name!r} cannot be read: {reason}. The file is corrupt, truncated or "
                        f"not readable.") from exc
    return from_pil(img)


def is_single_image(value: Any) -> bool:
    """One image: a path, bytes, a PIL image, an array ``(H, W[, C])`` or a tensor ``(H, W)`` / ``(C, H, W)``.
    A ``(B, C, H, W)`` tensor is a preprocessed batch; a list is a list of images."""
    if isinstance(value, (Tensor, np.ndarray)):
        return value.ndim in (2, 3)
    return isinstance(value, (str, os.PathLike, bytes, bytearray, memoryview)) or \
        type(value).__module__.startswith("PIL.") and hasattr(value, "mode")


def collate_images(raws: list[Any]) -> Tensor:
    """Same-size raws → ``(B, C, H, W)``. Differing sizes are a :class:`ShapeError`."""
    if not raws:
        raise DataError("image modality: cannot collate an empty list of images.")
    images = [load_image(r) for r in raws]
    expected = images[0].shape
    for i, im in enumerate(images):
        if im.shape != expected:
            raise ShapeError(f"image modality: images in a batch must share one shape (C, H, W); expected "
                             f"{tuple(expected)} (item 0), got {tuple(im.shape)} at item {i}. Use an encoder whose "
                             f"preprocess resizes (timm, open_clip, mlp) or a random_resized_crop with size=….")
    return torch.stack(images)  # (B, C, H, W)


def render_image(value: Any) -> tuple[str, bytes]:
    """An image (anything :func:`load_image` reads) → ``("image/png", PNG bytes)`` for a web page."""
    pil = require("PIL.Image", "image", "rendering images", package="pillow")
    x = load_image(value)  # (C, H, W) in [0, 1]
    arr = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
    buf = io.BytesIO()
    pil.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(buf, format="PNG")
    return "image/png", buf.getvalue()
