"""What every objective shares: the registration decorator and input checks.

Contract (every objective keeps it; README.md's "Objectives")::

    loss = objective(embeddings, logit_scale=s, logit_bias=b, labels=None, mask=None)

- ``embeddings``: ``Mapping[str, Tensor]``, one ``(B, D)`` L2-normalised tensor per view,
  rows aligned (row i of every view comes from sample i).
- ``logit_scale``: the multiplier ``1/τ`` as a scalar tensor or float (already exponentiated,
  as open_clip passes ``model.logit_scale.exp()``).
- ``logit_bias``: scalar, for sigmoid objectives.
- ``labels``: ``{level: (B,) int64}``, e.g. ``{"class": …}`` or ``{"patient": …, "trial": …}``.
- ``mask``: ``{view: (B,) bool}``, True where that view is present for the row.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Callable

import torch
from torch import Tensor

from zoo.errors import ShapeError

_BUILTIN: list[tuple[str, Callable, str, str]] = []


def register_objective(name: str, *, citation: str = "", description: str = ""):
    """Class decorator: register a built-in objective under ``name`` (where it is defined)."""

    def deco(cls):
        doc = (cls.__doc__ or "").strip().splitlines()
        _BUILTIN.append((name, cls, citation, description or (doc[0] if doc else "")))
        cls.registered_name = name
        return cls

    return deco


def check_embeddings(embeddings: Mapping[str, Tensor], *, min_views: int = 2, max_views: int | None = None,
                     who: str = "objective") -> list[Tensor]:
    """Validate ``{view: (B, D)}`` and return the tensors in insertion order."""
    if not isinstance(embeddings, Mapping):
        raise ShapeError(f"{who}: embeddings must be a mapping {{view: (B, D) tensor}}, got {type(embeddings).__name__}.")
    n = len(embeddings)
    if n < min_views or (max_views is not None and n > max_views):
        want = f"exactly {min_views}" if max_views == min_views else f"at least {min_views}" + (
            f" and at most {max_views}" if max_views else "")
        raise ShapeError(f"{who}: needs {want} views, got {n} ({', '.join(embeddings) or 'none'}). "
                         f"Choose an objective for {n} modalities (e.g. 'symile' or 'pairwise_clip' for more than two).")
    tensors = list(embeddings.values())
    first_name, first = next(iter(embeddings.items()))
    for name, t in embeddings.items():
        if t.dim() != 2:
            raise ShapeError(f"{who}: embeddings[{name!r}] expected shape (B, D), got {tuple(t.shape)}.")
        if t.shape != first.shape:
            raise ShapeError(f"{who}: embeddings[{name!r}] expected shape {tuple(first.shape)} "
                             f"(as {first_name!r}), got {tuple(t.shape)}; rows must be aligned and dims equal.")
    return tensors


def as_scalar(value, like: Tensor) -> Tensor:
    """``logit_scale``/``logit_bias`` as a 0-d tensor on ``like``'s device and dtype (a python number
    is converted straight to that dtype: not rounded to float32 first)."""
    t = value if isinstance(value, Tensor) else torch.tensor(float(value), dtype=like.dtype, device=like.device)
    if t.numel() != 1:
        raise ShapeError(f"logit scale/bias must be a scalar, got shape {tuple(t.shape)}.")
    return t.reshape(()).to(device=like.device, dtype=like.dtype)


def full_precision(forward: Callable) -> Callable:
    """Decorator for an objective's ``forward``: 16-bit embeddings are computed in float32, outside autocast.

    GPU training runs the objectives under bf16/fp16 autocast. Inside the decorated ``forward``,
    bf16/fp16 views are cast to float32 (the cast is differentiable: their gradients come back in
    their own dtype) and autocast is off, so the loss is that of the rounded embeddings to float32
    accuracy: no half-precision logits, accumulators or log-sum-exps, no fp16 overflow. The loss
    is returned in float32. Other inputs (float32/64 views, labels, masks) pass unchanged.
    """

    @functools.wraps(forward)
    def wrapped(self, embeddings, *args, **kwargs):
        if not isinstance(embeddings, Mapping):
            return forward(self, embeddings, *args, **kwargs)  # the objective's own check names the problem
        embeddings = {k: v.float() if isinstance(v, Tensor) and v.dtype in _HALF else v for k, v in embeddings.items()}
        device = next((v.device.type for v in embeddings.values() if isinstance(v, Tensor)), "cpu")
        if not torch.amp.is_autocast_available(device):
            return forward(self, embeddings, *args, **kwargs)
        with torch.autocast(device, enabled=False):
            return forward(self, embeddings, *args, **kwargs)

    return wrapped


_HALF = (torch.float16, torch.bfloat16)


def require_labels(labels, level: str, batch: int, who: str) -> Tensor:
    """``labels[level]`` as ``(B,)``, or a clear error naming what is missing."""
    if not labels or level not in labels:
        have = ", ".join(labels) if labels else "none"
        raise ShapeError(f"{who}: needs labels[{level!r}] of shape ({batch},), got labels: {have}. "
                         f"Use a dataset with a {level!r} label and a pair strategy that passes it.")
    y = labels[level]
    if y.shape != (batch,):
        raise ShapeError(f"{who}: labels[{level!r}] expected shape ({batch},), got {tuple(y.shape)}.")
    return y
