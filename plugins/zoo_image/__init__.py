"""zoo's ``image`` modality plugin (extra ``image``: torchvision, timm, open_clip, Pillow).

- modality ``image``: raw = float32 ``(C, H, W)`` in [0, 1]; ``load`` reads paths, bytes, PIL
  images, numpy arrays and tensors (:mod:`zoo_image.io`); ``collate`` stacks same-size raws.
- encoders ``mlp`` (:mod:`zoo_image.mlp`), ``timm:<model>`` (:mod:`zoo_image.timm_encoder`),
  ``open_clip:<arch>`` (:mod:`zoo_image.open_clip_encoder`), each with ``preprocess(raws)`` and
  ``preprocess_config()`` (:mod:`zoo_image.preprocess`).
- augmentations (:mod:`zoo_image.augment`), deterministic under the generator passed in.

timm and open_clip are imported only when such an encoder is built.
"""
from __future__ import annotations

from typing import Any

from zoo import hookimpl

from .augment import AUGMENTATIONS
from .io import collate_images, is_single_image, load_image, render_image
from .mlp import MLPImageEncoder

__all__ = ["MLPImageEncoder", "build_open_clip", "build_timm", "collate_images", "load_image"]


def build_timm(variant: str, **kw: Any):
    """``timm:<variant>`` → :class:`zoo_image.timm_encoder.TimmEncoder`."""
    from .timm_encoder import TimmEncoder
    return TimmEncoder(variant, **kw)


def build_open_clip(arch: str, **kw: Any):
    """``open_clip:<arch>`` → :class:`zoo_image.open_clip_encoder.OpenCLIPVisionEncoder`."""
    from .open_clip_encoder import OpenCLIPVisionEncoder
    return OpenCLIPVisionEncoder(arch, **kw)


@hookimpl
def zoo_register_modalities(register):
    register("image", load=load_image, collate=collate_images, extra="image", thumbnail=thumbnail,
             render=render_image,
             is_single=is_single_image,
             extensions=(".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"),
             description="images: float32 (C, H, W) in [0, 1] from paths, PIL, numpy (H, W[, C]) or tensors")


def thumbnail(raw: Any):
    """A raw image as an ``(H, W)`` or ``(H, W, 3)`` array in [0, 1] for pictures (zoo.evaluation.plots)."""
    x = load_image(raw)  # (C, H, W)
    return (x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)).clamp(0, 1).numpy()


@hookimpl
def zoo_register_encoders(register):
    register("image", "mlp", MLPImageEncoder, description="flatten (C, H, W) → MLP, levels layer1…; 8×8 digits")
    register("image", "timm", build_timm, variant="timm model",
             description="any timm backbone, pooled features: timm:<model name>")
    register("image", "open_clip", build_open_clip, variant="arch | custom",
             description="vision tower of an open_clip model: open_clip:<arch> (or custom + vision_cfg)")


@hookimpl
def zoo_register_augmentations(register):
    for name, (make, description) in AUGMENTATIONS.items():
        register("image", name, make, description=description)
