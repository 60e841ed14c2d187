"""Alignment and uniformity on the hypersphere (Wang & Isola 2020): a loss and two metrics."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.errors import OptionError, ShapeError
from zoo.objectives.base import check_embeddings, full_precision, register_objective


def _check_rows(x: Tensor, who: str, minimum: int = 1) -> None:
    if x.dim() != 2 or x.shape[0] < minimum:
        raise ShapeError(f"{who}: expected a (B, D) tensor with B ≥ {minimum}, got shape {tuple(x.shape)}.")


def alignment(a: Tensor, b: Tensor, alpha: float = 2) -> Tensor:
    """Mean distance of positive pairs: ``E ‖a_i − b_i‖₂^α`` (lower is better). ``a``, ``b``: ``(B, D)``."""
    _check_rows(a, "alignment")
    if a.shape != b.shape:
        raise ShapeError(f"alignment: expected b of shape {tuple(a.shape)} (as a), got {tuple(b.shape)}.")
    if alpha == 2:
        return (a - b).pow(2).sum(dim=1).mean()                      # squared norm: no sqrt at 0
    return (a - b).norm(dim=1).pow(alpha).mean()


def uniformity(x: Tensor, t: float = 2) -> Tensor:
    """``log E_{i<j} exp(−t ‖x_i − x_j‖₂²)`` over distinct pairs (lower is more uniform). ``x``: ``(B, D)``, B ≥ 2."""
    _check_rows(x, "uniformity", minimum=2)
    sq_norm = x.pow(2).sum(dim=1)                                    # (B,)
    sq = (sq_norm[:, None] + sq_norm[None, :] - 2 * x @ x.T).clamp(min=0)   # (B, B) squared distances
    n = x.shape[0]
    off_diagonal = (-t * sq).masked_fill(torch.eye(n, dtype=torch.bool, device=x.device), float("-inf"))
    return torch.logsumexp(off_diagonal.flatten(), dim=0) - math.log(n * (n - 1))   # i≠j: each pair twice


@register_objective("align_uniform",
                    citation="Wang & Isola 2020, Understanding Contrastive Representation Learning through Alignment "
                             "and Uniformity on the Hypersphere (ICML 2020, arXiv:2005.10242)")
class AlignUniformLoss(nn.Module):
    """Alignment + λ·uniformity: pull positive pairs together, spread all embeddings out.

    Paper: Wang & Isola, "Understanding Contrastive Representation Learning through Alignment
    and Uniformity on the Hypersphere", ICML 2020.

    Equation (two views a, b; the paper's reference code)::

        L_align   = E_i ‖a_i − b_i‖₂^α
        L_uniform(x) = log E_{i<j} exp(−t ‖x_i − x_j‖₂²)
        L = L_align + λ · (L_uniform(a) + L_uniform(b)) / 2

    Paper defaults: α = 2, t = 2, λ = 1. The loss has no temperature: ``logit_scale`` and
    ``logit_bias`` are accepted (the objective contract) and ignored, so a learnable scale
    gets no gradient from it. The module-level :func:`alignment` and :func:`uniformity` are
    the paper's metrics (used by evaluation).

    Shapes: embeddings ``{view1: (B, D), view2: (B, D)}`` L2-normalised, B ≥ 2; returns ``()``.

    Example:
        >>> loss = AlignUniformLoss(lam=1.0)({"x.1": z1, "x.2": z2}, logit_scale=None)
    """

    def __init__(self, alpha: float = 2, t: float = 2, lam: float = 1.0):
        super().__init__()
        for name, value, rule in (("alpha", alpha, alpha > 0), ("t", t, t > 0), ("lam", lam, lam >= 0)):
            if not rule:
                raise OptionError(name,
                                  f"align_uniform: {name} must be {'≥ 0' if name == 'lam' else '> 0'}, got {value}; "
                                  f"the paper uses alpha=2, t=2, lam=1.")
        self.alpha, self.t, self.lam = alpha, t, lam

    @full_precision
    def forward(self, embeddings, *, logit_scale=None, logit_bias=None, labels=None, mask=None) -> Tensor:
        a, b = check_embeddings(embeddings, min_views=2, max_views=2, who="align_uniform")
        _check_rows(a, "align_uniform", minimum=2)
        spread = (uniformity(a, self.t) + uniformity(b, self.t)) / 2
        return alignment(a, b, self.alpha) + self.lam * spread
