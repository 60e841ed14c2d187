"""``image/open_clip:<arch>``: the vision tower of an open_clip model, ``(B, embed_dim)``.

    enc = zoo.create_encoder("image", "open_clip:ViT-B-32")          # random init, 224×224
    enc = zoo.create_encoder("image", "open_clip:ViT-B-32", embed_dim=16,   # a tiny custom tower
                             vision_cfg={"width": 32, "layers": 2, "patch_size": 8, "image_size": 32})
    enc = zoo.create_encoder("image", "open_clip:custom", embed_dim=16,
                             vision_cfg={"width": 32, "layers": 2, "patch_size": 8, "image_size": 32})

``arch`` is an open_clip model config (``open_clip.list_models()``) or ``custom`` (then
``vision_cfg`` and ``embed_dim`` describe it all); ``vision_cfg`` keys (open_clip's
``CLIPVisionCfg``) override the config's. ``pretrained`` (an open_clip tag or a checkpoint
file) loads the full model with open_clip and keeps its ``visual``; failure is an error,
never random weights. The tower's state-dict keys are open_clip's (``visual.*``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from zoo.checks import require
from zoo.errors import CheckpointError, RecipeError, ShapeError, UnknownNameError

from ._checks import pair
from .preprocess import OPENAI_MEAN, OPENAI_STD, ImagePreprocess, PreprocessMixin

CUSTOM = "custom"


class OpenCLIPVisionEncoder(PreprocessMixin, nn.Module):
    """open_clip's ``visual`` module (ViT, ModifiedResNet or timm trunk + projection)."""

    def __init__(self, arch: str, *, embed_dim: int | None = None, vision_cfg: Mapping[str, Any] | None = None,
                 quick_gelu: bool | None = None, pretrained: str | None = None, cache_dir: str | None = None,
                 image_size: int | Sequence[int] | None = None, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, interpolation: str | None = None,
                 grad_checkpointing: bool = False):
        super().__init__()
        open_clip = require("open_clip", "image", f"image encoder open_clip:{arch}")
        self.arch = arch
        base = base_config(open_clip, arch)
        vcfg = vision_config(open_clip, base.get("vision_cfg", {}), vision_cfg or {}, arch)
        dim = embed_dim or base.get("embed_dim")
        if not isinstance(dim, int) or dim <= 0:
            raise RecipeError(f"open_clip:{arch} needs a positive int embed_dim, got {dim!r}.")
        gelu = bool(base.get("quick_gelu", False)) if quick_gelu is None else quick_gelu
        if pretrained:
            self.visual, pp = load_pretrained(open_clip, arch, pretrained, dim, vcfg, gelu, cache_dir)
        else:
            self.visual = open_clip.model._build_vision_tower(dim, vcfg, quick_gelu=gelu)
            pp = {"mean": OPENAI_MEAN, "std": OPENAI_STD, "interpolation": "bicubic", "resize_mode": "shortest"}
        if grad_checkpointing:
            self.visual.set_grad_checkpointing(True)
        self.output_dim = dim
        self.open_clip_cfg = {"vision_cfg": vcfg, "quick_gelu": gelu}
        self.preprocessor = ImagePreprocess(
            image_size=pair(image_size, "image_size") or pair(self.visual.image_size, "image_size"), channels=3,
            mean=pp["mean"] if mean is None else mean, std=pp["std"] if std is None else std,
            interpolation=interpolation or pp["interpolation"],
            resize_mode="squash" if pp.get("resize_mode") == "squash" else "shortest")

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ShapeError(f"open_clip:{self.arch}: expected a batch (B, 3, H, W), got {tuple(x.shape)}. "
                             f"Use encoder.preprocess(raws).")
        out = self.visual(x)
        return out[0] if isinstance(out, tuple) else out  # (B, embed_dim)

    def open_clip_parts(self) -> dict[str, Any]:
        """This tower for ``model.export("open_clip", dir)``: open_clip's visual module, config, preprocessing."""
        return {"module": self.visual, **self.open_clip_cfg, "preprocess_cfg": open_clip_preprocess(self.preprocessor)}


def open_clip_preprocess(pre: ImagePreprocess) -> dict[str, Any]:
    """An :class:`ImagePreprocess` as open_clip's ``preprocess_cfg`` (open_clip has no crop_pct)."""
    if pre.crop_pct != 1 or pre.channels != 3:
        from zoo.hub.export import ExportError
        raise ExportError(f"image preprocessing with crop_pct={pre.crop_pct}, channels={pre.channels} has no open_clip "
                          f"equivalent (open_clip crops at 1.0, RGB).")
    return {"size": list(pre.image_size), "mode": "RGB", "mean": list(pre.mean), "std": list(pre.std),
            "interpolation": pre.interpolation, "resize_mode": pre.resize_mode}


def base_config(open_clip: Any, arch: str) -> dict[str, Any]:
    if arch == CUSTOM:
        return {}
    cfg = open_clip.get_model_config(arch) if arch in open_clip.list_models() else None
    if cfg is None:
        raise UnknownNameError("open_clip architecture", arch, [*open_clip.list_models(), CUSTOM],
                               hint="open_clip.list_models() lists them; 'custom' builds from vision_cfg alone.")
    return cfg


def vision_config(open_clip: Any, base: Mapping[str, Any], overrides: Mapping[str, Any], arch: str) -> dict[str, Any]:
    valid = [f.name for f in dataclasses.fields(open_clip.model.CLIPVisionCfg)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise RecipeError(f"open_clip:{arch}: unknown vision_cfg key(s) {unknown}; valid keys: {', '.join(valid)}.")
    return {**base, **overrides}


def load_pretrained(open_clip: Any, arch: str, pretrained: str, dim: int, vcfg: dict[str, Any], quick_gelu: bool,
                    cache_dir: str | None) -> tuple[nn.Module, dict[str, Any]]:
    """The visual tower and preprocess config of ``open_clip.create_model(arch, pretrained=…)``."""
    try:
        model = open_clip.create_model(arch, pretrained=pretrained, cache_dir=cache_dir, require_pretrained=True,
                                       embed_dim=dim, vision_cfg=vcfg, quick_gelu=quick_gelu)
    except Exception as exc:  # download, file and state-dict errors all mean "no weights"
        raise CheckpointError(
            f"open_clip:{arch}: pretrained weights {pretrained!r} could not be loaded: {type(exc).__name__}: {exc}. "
            f"The zoo does not fall back to random weights. Give a tag from open_clip.list_pretrained_tags_by_model"
            f"({arch!r}) whose files are in the cache, a local checkpoint file, or leave pretrained unset.") from exc
    return model.visual, dict(model.visual.preprocess_cfg)
