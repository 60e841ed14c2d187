"""Two-view (SimCLR-style) kernels: input checks, anchor/negative scores and the debiased estimator.

Private math of DCL, debiased, hard negatives and MoCHi (no registration).

In this setting each of the ``2B`` embeddings of two views is an anchor; its positive is the
other view of its row and its ``2B − 2`` negatives are every other embedding of both views.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from zoo.errors import ShapeError
from zoo.objectives.base import as_scalar, check_embeddings


def require_batch(batch: int, who: str, minimum: int = 2) -> None:
    """Contrastive losses need other rows to contrast with."""
    if batch < minimum:
        raise ShapeError(f"{who}: expected a batch of at least {minimum} rows (negatives come from the other "
                         f"rows), got {batch}. Use a larger batch size.")


def two_view_inputs(embeddings, logit_scale, who: str) -> tuple[Tensor, Tensor, Tensor]:
    """The prelude of the family's ``forward``: ``(a, b, scale)``, exactly two ``(B, D)`` views with
    ``B ≥ 2`` and the scale as a 0-d tensor of their dtype."""
    a, b = check_embeddings(embeddings, min_views=2, max_views=2, who=who)
    require_batch(a.shape[0], who)
    return a, b, as_scalar(logit_scale, a)


def two_view_scores(a: Tensor, b: Tensor, scale: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Scaled similarities of every anchor with every other embedding, and which are negatives.

    ``a``, ``b``: ``(B, D)``; anchor ``i < B`` is ``a[i]``, anchor ``B + i`` is ``b[i]``. Returns
    ``pos (2B,)`` (with the other view of the same row), ``logits (2B, 2B)`` and
    ``not_negative (2B, 2B)`` bool, True on each anchor's own and its positive's column (the
    ``2B − 2`` others are its negatives). Masking, not indexing, keeps this one dense pass.
    """
    n = 2 * a.shape[0]
    z = torch.cat([a, b])                                    # (2B, D)
    logits = z @ z.T * scale                                 # (2B, 2B)
    rows = torch.arange(n, device=a.device)
    partner = (rows + n // 2) % n                            # (2B,) the other view of the same row
    not_negative = torch.zeros(n, n, dtype=torch.bool, device=a.device)
    not_negative[rows, rows] = True
    not_negative[rows, partner] = True
    return logits[rows, partner], logits, not_negative


def masked_logsumexp(x: Tensor, mask: Tensor) -> Tensor:
    """``log Σ_j exp(x_ij)`` over the entries where ``mask`` is False, per row: ``(A,)``."""
    return torch.logsumexp(x.masked_fill(mask, float("-inf")), dim=1)


def debiased_nll(pos: Tensor, logits: Tensor, not_negative: Tensor, scale: Tensor, tau_plus: float,
                 beta: float) -> Tensor:
    """``−log(e^{pos} / (e^{pos} + N·g))`` per anchor, computed in log space.

    ``g`` estimates the true-negative term (Chuang et al. 2020; Robinson et al. 2021)::

        N·g = max( (N·Σ_j w_j e^{s_j} − τ⁺·N·e^{pos}) / (1 − τ⁺),  N·e^{−scale} )
        w_j = e^{β s_j} / Σ_k e^{β s_k}          (β = 0: w_j = 1/N, the debiased estimator)

    ``pos (A,)`` and ``logits (A, C)`` are scaled logits from :func:`two_view_scores`, the
    negatives s_j being the N = C − 2 entries where ``not_negative`` is False; returns ``(A,)``. ``e^{−scale}`` is the
    smallest possible ``e^{s}`` for unit vectors (cosine ≥ −1), the paper's clamp.
    """
    n = logits.shape[1] - 2                                  # all but the anchor and its positive
    log_reweighted = masked_logsumexp((1 + beta) * logits, not_negative) + math.log(n)
    if beta:
        log_reweighted = log_reweighted - masked_logsumexp(beta * logits, not_negative)   # (A,)
    else:
        log_reweighted = log_reweighted - math.log(n)                                    # Σ_j e^{s_j}
    top_neg = logits.detach().masked_fill(not_negative, float("-inf")).max(dim=1).values
    m = torch.maximum(pos.detach(), top_neg)                 # (A,) shift so every exp ≤ N
    ng = (torch.exp(log_reweighted - m) - tau_plus * n * torch.exp(pos - m)) / (1 - tau_plus)
    ng = torch.maximum(ng, n * torch.exp(-scale - m))       # (A,) the N·e^{−1/t} clamp
    return m - pos + torch.log(torch.exp(pos - m) + ng)


def debiased_loss(embeddings, logit_scale, tau_plus: float, beta: float, who: str) -> Tensor:
    """Mean :func:`debiased_nll` over the ``2B`` anchors of two views: the debiased (``β = 0``) and
    hard-negative losses, ``()``."""
    a, b, scale = two_view_inputs(embeddings, logit_scale, who)
    pos, logits, not_negative = two_view_scores(a, b, scale)      # (2B,), (2B, 2B), (2B, 2B)
    return debiased_nll(pos, logits, not_negative, scale, tau_plus, beta).mean()
