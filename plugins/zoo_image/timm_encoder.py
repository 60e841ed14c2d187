"""``image/timm:<name>``: any timm backbone, pooled features ``(B, num_features)``.

    enc = zoo.create_encoder("image", "timm:resnet18")                   # random init
    enc = zoo.create_encoder("image", "timm:resnet18", pretrained=True)  # weights, or a CheckpointError
    enc = zoo.create_encoder("image", "timm:resnet18", pretrained=True,
                             pretrained_cfg_overlay={"file": "resnet18.safetensors"})

Every keyword other than the preprocessing ones (``image_size``, ``mean``, ``std``,
``interpolation``, ``crop_pct``) goes to ``timm.create_model(name, num_classes=0, …)``.
Preprocessing defaults come from the model's ``pretrained_cfg`` (``resolve_model_data_config``).
``pretrained=True`` never falls back to random weights: unreachable or partial weights raise.
Models with ``forward_intermediates`` expose their feature stages as levels (``layer1``…,
``blocks_0``…: the ``feature_info`` module names), each spatially mean-pooled to ``(B, C)``.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from zoo.checks import require
from zoo.errors import CheckpointError, RecipeError, ShapeError, UnknownNameError

from ._checks import pair
from .preprocess import ImagePreprocess, PreprocessMixin

_SCHEMES = ("hf-hub:", "hf_hub:", "local-dir:")
_TIMM_LOG = "timm.models"  # parent of _builder and _helpers, which report loading


class TimmEncoder(PreprocessMixin, nn.Module):
    """A timm model with its classifier removed (``num_classes=0``): ``(B, C, H, W) -> (B, output_dim)``."""

    def __init__(self, variant: str, *, pretrained: bool = False, image_size: int | Sequence[int] | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 interpolation: str | None = None, crop_pct: float | None = None,
                 grad_checkpointing: bool = False, **timm_kwargs: Any):
        super().__init__()
        timm = require("timm", "image", f"image encoder timm:{variant}")
        check_known(timm, variant)
        self.variant = variant
        self.model = create_timm_model(timm, variant, pretrained, timm_kwargs)
        if grad_checkpointing:
            self.model.set_grad_checkpointing(True)
        self.output_dim = int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)
        self.level_dims = feature_levels(self.model)
        cfg = timm.data.resolve_model_data_config(self.model)
        self.preprocessor = ImagePreprocess(
            image_size=pair(image_size, "image_size") or pair(timm_kwargs.get("img_size"), "img_size")
            or tuple(cfg["input_size"][1:]),
            channels=int(timm_kwargs.get("in_chans", 3)),
            mean=cfg["mean"] if mean is None else mean,
            std=cfg["std"] if std is None else std,
            interpolation=interpolation or _interpolation(cfg.get("interpolation")),
            crop_pct=float(cfg.get("crop_pct") or 1.0) if crop_pct is None else crop_pct,
            resize_mode="squash" if cfg.get("crop_mode") == "squash" else "shortest")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.model(x)  # (B, output_dim)

    def forward_levels(self, x: Tensor) -> dict[str, Tensor]:
        """``{stage: (B, C_stage)}`` (mean-pooled feature maps) and ``"final"``: ``(B, output_dim)``."""
        if not self.level_dims:
            raise ShapeError(f"timm:{self.variant} has no forward_intermediates, so no levels; use forward().")
        self._check(x)
        final, maps = self.model.forward_intermediates(x, indices=len(self.level_dims), intermediates_only=False)
        out = {name: m.mean(dim=(-2, -1)) for name, m in zip(self.level_dims, maps)}  # (B, C, h, w) -> (B, C)
        out["final"] = self.model.forward_head(final, pre_logits=True)  # (B, output_dim), as forward()
        return out

    def _check(self, x: Tensor) -> None:
        c = self.preprocessor.channels
        if x.dim() != 4 or x.shape[1] != c:
            raise ShapeError(f"timm:{self.variant}: expected a batch (B, {c}, H, W), got {tuple(x.shape)}. "
                             f"Use encoder.preprocess(raws).")


def _interpolation(name: str | None) -> str:
    return name if name in ("nearest", "bilinear", "bicubic") else "bilinear"  # timm's "random" → bilinear


def feature_levels(model: nn.Module) -> dict[str, int]:
    """``{level: channels}`` from ``feature_info`` when the model supports ``forward_intermediates``."""
    info = getattr(model, "feature_info", None)
    if not hasattr(model, "forward_intermediates") or not isinstance(info, list):
        return {}
    return {f["module"].replace(".", "_"): int(f["num_chs"]) for f in info}


def check_known(timm: Any, variant: str) -> None:
    if variant.startswith(_SCHEMES) or timm.is_model(variant):
        return
    raise UnknownNameError("timm model", variant, timm.list_models(),
                           hint="timm.list_models('*pattern*') lists the names timm knows.")


def create_timm_model(timm: Any, variant: str, pretrained: bool, kw: dict[str, Any]) -> nn.Module:
    """``timm.create_model(variant, num_classes=0, …)``; with ``pretrained`` the weights must load fully."""
    if not pretrained:  # where the weights would come from means nothing without them (a re-loaded checkpoint
        # carries its own weights, and the weight file it was first built from may be gone)
        return _create(timm, variant, {k: v for k, v in kw.items() if k != "pretrained_cfg_overlay"}, pretrained=False)
    with _BuilderLog() as log:
        try:
            model = _create(timm, variant, kw, pretrained=True)
        except RecipeError:
            raise
        except Exception as exc:  # hub, url, file and format errors all mean "no weights"
            raise CheckpointError(_unreachable(variant, kw, exc)) from exc
    log.check(variant)
    return model


def _create(timm: Any, variant: str, kw: dict[str, Any], pretrained: bool) -> nn.Module:
    try:
        return timm.create_model(variant, pretrained=pretrained, num_classes=0, **kw)
    except TypeError as exc:
        if "unexpected keyword" not in str(exc):
            raise
        raise RecipeError(f"timm:{variant} does not accept one of the options {sorted(kw)}: {exc}. Options "
                          f"other than image_size, mean, std, interpolation, crop_pct go to "
                          f"timm.create_model.") from exc


def _unreachable(variant: str, kw: dict[str, Any], exc: Exception) -> str:
    file = (kw.get("pretrained_cfg_overlay") or {}).get("file")
    source = f"the file {file!r}" if file else "the Hugging Face Hub or timm's URLs (and the local cache)"
    reason = str(exc).rstrip(". ") or ("file not found" if isinstance(exc, FileNotFoundError) else "no details")
    return (f"timm:{variant}: pretrained weights could not be loaded from {source}: {type(exc).__name__}: "
            f"{reason}. The zoo does not fall back to random weights. Fixes: put the weights in "
            f"the Hugging Face cache, pass pretrained_cfg_overlay = {{file = '/path/model.safetensors'}}, or set "
            f"pretrained = false for a random initialisation.")


class _BuilderLog(logging.Handler):
    """Collects timm's loading messages, which report partial loads only as log lines."""

    def __enter__(self) -> _BuilderLog:
        self.messages: list[str] = []
        self.logger = logging.getLogger(_TIMM_LOG)
        self.old_level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.old_level)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def check(self, variant: str) -> None:
        bad = [m.split(" discovered")[0] for m in self.messages if "Missing keys" in m or "random init" in m.lower()]
        if bad:
            raise CheckpointError(f"timm:{variant}: the pretrained weights do not cover the model ({'; '.join(bad)}). "
                                  f"Check that the weights file belongs to this architecture and its options.")
        for m in self.messages:
            if "Unexpected keys" in m:
                warnings.warn(f"timm:{variant}: {m}", stacklevel=4)
