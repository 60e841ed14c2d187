"""CLIP: the symmetric InfoNCE loss between two views (Radford et al. 2021).

Besides the module :class:`ClipLoss` this file exposes the functional :func:`clip_loss`, which the
multi-view objectives (pairwise and anchored CLIP) call on each pair of views.

Speed: one ``(N, N)`` logits matrix serves both directions (its transpose is the other one) and
the backward pass is written by hand, so a forward+backward costs three ``N×N×D`` matrix
products where autograd over two ``cross_entropy`` calls costs six, and one ``(N, N)`` buffer is
allocated where autograd allocates several. ``chunk_size`` streams the logits in column blocks
(memory O(N·chunk) instead of O(N²)), see :mod:`._blocked`.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import check_option
from zoo.errors import RecipeError
from zoo.objectives._autograd import graph_of_gradient, no_autocast
from zoo.objectives._blocked import clip_lse_blocked, clip_products_blocked, row_slabs
from zoo.objectives._pair_inputs import check_chunk_size, nothing_to_contrast, pair_inputs, present_views
from zoo.objectives.base import full_precision, register_objective


def _dense_exp(sa: Tensor, b: Tensor,
               top: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``E = exp(L − top)`` in place of ``L = sa·bᵀ`` (``top`` defaults to ``max L``), its row and
    column sums and the diagonal ``L_ii`` ``(N,)`` as the GEMM computed it."""
    e = sa @ b.T  # (N, N) logits, overwritten by E below
    diag = e.diagonal().clone()
    top = e.max() if top is None else top
    row_sums = e.new_empty(e.shape[0])  # (N,)
    col_sums = e.new_zeros(e.shape[1])  # (N,)
    for rows in row_slabs(*e.shape):  # fused passes over cache-sized slabs
        slab = e[rows].sub_(top).exp_()
        row_sums[rows] = slab.sum(dim=1)
        col_sums += slab.sum(dim=0)
    return e, top, row_sums, col_sums, diag


def _underflows(row_sums: Tensor, col_sums: Tensor) -> bool:
    """True when a row or column of ``E`` lies so far below the shared shift that it lost digits.

    Then one shift is not exact (the caller takes the stable streaming path); otherwise every lost
    term is below ``N·tiny``, far below the ulp of a sum ``>= sqrt(tiny)``, and ``|log sum|`` stays
    below ``½·ln(1/tiny)`` (44 in float32), which bounds the rounding of the gaps below.
    """
    safe = torch.finfo(row_sums.dtype).tiny ** 0.5
    return min(row_sums.min().item(), col_sums.min().item()) < safe


def _dense_products(e: Tensor, row_sums: Tensor, col_sums: Tensor, a: Tensor,
                    b: Tensor) -> tuple[Tensor, Tensor]:
    """``(G·b, Gᵀ·a)`` with ``G = E ⊙ (1/row_sum_i + 1/col_sum_j) / 2N``, built in place of ``E``."""
    n = e.shape[0]
    inv_rows = row_sums.reciprocal().mul_(0.5 / n)[:, None]  # (N, 1)
    inv_cols = col_sums.reciprocal().mul_(0.5 / n)[None, :]  # (1, N)
    for rows in row_slabs(*e.shape):
        e[rows].mul_(inv_rows[rows] + inv_cols)
    return e @ b, e.T @ a


def clip_value(row_gaps: Tensor, col_gaps: Tensor, diag: Tensor, a: Tensor, cols: Tensor, scale: Tensor,
               eps: float) -> Tensor:
    """Loss of the rows of ``a`` from the gaps ``lse − L_ii`` (≥ 0 each, so their sum cannot cancel).

    Row ``i``'s cross-entropy with targets ``(1−ε)·δ_ij + ε/N`` is ``(lse_i − L_ii) + ε·(L_ii − mean_j L_ij)``;
    the smoothing part needs only O(N·D) sums of ``L`` (``cols``: all N columns, ``a``: these rows).
    """
    n = cols.shape[0]
    value = (row_gaps.sum() + col_gaps.sum()) / (2 * n)
    if eps:
        value = value + eps / n * (diag.sum() - scale * (a.sum(0) @ cols.sum(0)) / n)
    return value


def _grads(a: Tensor, b: Tensor, scale: Tensor, gb: Tensor, gta: Tensor, eps: float,
           grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients w.r.t. ``a``, ``b``, ``scale`` from ``G·b`` and ``Gᵀ·a`` (targets subtracted here)."""
    n = a.shape[0]
    ua = gb.sub_(b, alpha=(1 - eps) / n).sub_(b.sum(0), alpha=eps / n ** 2)  # (∂loss/∂L)·b
    ub = gta.sub_(a, alpha=(1 - eps) / n).sub_(a.sum(0), alpha=eps / n ** 2)  # (∂loss/∂L)ᵀ·a
    d_scale = grad * (a * ua).sum()
    return ua.mul_(grad * scale), ub.mul_(grad * scale), d_scale


def clip_reference(a: Tensor, b: Tensor, scale: Tensor, eps: float, *_) -> Tensor:
    """Plain-autograd CLIP (both ``cross_entropy`` directions): the graph for second-order gradients."""
    logits = scale * a @ b.T  # (N, N)
    target = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, target, label_smoothing=eps)
            + F.cross_entropy(logits.T, target, label_smoothing=eps)) / 2


class _ClipFunction(torch.autograd.Function):
    """Symmetric InfoNCE with a hand-written backward; ``chunk=None`` is the dense path."""

    @staticmethod
    def forward(ctx, a, b, scale, eps, chunk):
        with no_autocast(a):
            sa = a * scale  # (N, D)
            n = a.shape[0]
            ctx.top, ctx.buffers, ctx.eps, ctx.chunk = None, None, eps, min(chunk or n, n)
            if ctx.chunk == n:
                e, top, row_sums, col_sums, diag = _dense_exp(sa, b)
                if not _underflows(row_sums, col_sums):
                    lse_rows, lse_cols = row_sums.log(), col_sums.log()  # shifted by top
                    row_gaps, col_gaps = lse_rows + (top - diag), lse_cols + (top - diag)
                    lse_rows += top
                    lse_cols += top
                    ctx.top, ctx.buffers = top, (e, row_sums, col_sums)  # E is consumed by the backward
                del e
            if ctx.top is None:
                lse_rows, lse_cols, row_gaps, col_gaps, diag = clip_lse_blocked(sa, b, ctx.chunk)
            ctx.save_for_backward(a, b, scale, lse_rows, lse_cols)
            return clip_value(row_gaps, col_gaps, diag, a, b, scale, eps)

    @staticmethod
    def backward(ctx, grad):
        a, b, scale, lse_rows, lse_cols = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: differentiate the plain formulation
            return graph_of_gradient(clip_reference, (a, b, scale, ctx.eps, ctx.chunk), ctx.needs_input_grad, grad)
        buffers, ctx.buffers = ctx.buffers, None
        with no_autocast(a):
            if ctx.top is None:
                gb, gta = clip_products_blocked(a * scale, a, b, lse_rows, lse_cols, ctx.chunk)
            else:
                if buffers is None:  # a second backward (retain_graph=True) rebuilds the forward's E
                    e, _, row_sums, col_sums, _ = _dense_exp(a * scale, b, ctx.top)
                    buffers = (e, row_sums, col_sums)
                gb, gta = _dense_products(*buffers, a, b)
            da, db, d_scale = _grads(a, b, scale, gb, gta, ctx.eps, grad)
        return da, db, d_scale, None, None


def clip_loss(a: Tensor, b: Tensor, logit_scale: Tensor | float, *, label_smoothing: float = 0.0,
              chunk_size: int | None = None) -> Tensor:
    """Symmetric InfoNCE between two aligned views, the mean of both directions.

    ``a``, ``b``: ``(N, D)``, row ``i`` of each is a positive pair; ``logit_scale``: ``1/τ`` (scalar
    tensor or float, gradients flow into it). ``label_smoothing`` as in ``F.cross_entropy``;
    ``chunk_size`` streams the logits in ``(N, chunk_size)`` blocks. Returns a 0-d tensor, in
    float32 for 16-bit inputs (computed in float32: the loss of the rounded inputs), else in
    their dtype. Second-order gradients (``create_graph=True``) are supported (O(N²) memory).
    Example: ``clip_loss(z_image, z_text, model.logit_scale.exp())``.
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise RecipeError(f"label_smoothing must be in [0, 1] (as in torch cross_entropy), got {label_smoothing}.")
    a, b, scale, _ = pair_inputs(a, b, logit_scale, chunk_size=chunk_size, who="clip_loss")
    return _ClipFunction.apply(a, b, scale, float(label_smoothing), chunk_size)


@register_objective("clip", citation="Radford et al. 2021, Learning Transferable Visual Models From "
                                     "Natural Language Supervision (arXiv:2103.00020)")
class ClipLoss(nn.Module):
    """Symmetric InfoNCE (CLIP) between exactly two aligned views.

    Paper: Radford, Kim, Hallacy, Ramesh, Goh, Agarwal, Sastry, Askell, Mishkin, Clark, Krueger,
    Sutskever 2021, "Learning Transferable Visual Models From Natural Language Supervision" (CLIP),
    the InfoNCE of van den Oord, Li, Vinyals 2018 ("Representation Learning with Contrastive
    Predictive Coding") in both directions.
    Equation, with logits ``L_ij = s · a_i·b_j`` (``s = 1/τ``) and targets
    ``q_ij = (1−ε)·[i = j] + ε/N`` (``ε`` = label_smoothing)::

        loss = 1/(2N) Σ_i [ −Σ_j q_ij log softmax_j(L_i·)  −  Σ_j q_ij log softmax_j(L_·i) ]

    i.e. the mean of ``cross_entropy(L, arange(N))`` and ``cross_entropy(Lᵀ, arange(N))``, equal to
    open_clip's ``ClipLoss`` (values and gradients) when ``ε = 0``.
    Shapes: embeddings ``{view_1: (B, D), view_2: (B, D)}``; returns a 0-d tensor.
    ``mask`` ``{view: (B,) bool}`` drops the rows where either view is absent; ``labels`` are
    ignored (use ``supcon`` for label positives); ``logit_bias`` is ignored (a constant added to
    every logit cancels in the softmax).
    ``chunk_size``: ``None`` computes the ``(B, B)`` logits at once (fastest); an int streams them in
    ``(B, chunk_size)`` column blocks with a streaming log-sum-exp, peak memory O(B·chunk_size).

    Example:
        >>> loss = ClipLoss()({"image": zi, "text": zt}, logit_scale=torch.tensor(14.3))
    """

    def __init__(self, label_smoothing: float = 0.0, chunk_size: int | None = None):
        super().__init__()
        check_option("label_smoothing", label_smoothing, low=0, high=1, high_open=True, who="clip",
                     hint="0.1 is usual; 1 would make every target uniform and leave nothing to learn")
        self.label_smoothing = float(label_smoothing)
        self.chunk_size = check_chunk_size(chunk_size)

    @full_precision
    def forward(self, embeddings: Mapping[str, Tensor], *, logit_scale, logit_bias=None, labels=None,
                mask=None) -> Tensor:
        a, b = present_views(embeddings, mask, "clip")
        if a.shape[0] == 0:
            return nothing_to_contrast(a, b)
        return clip_loss(a, b, logit_scale, label_smoothing=self.label_smoothing, chunk_size=self.chunk_size)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}, chunk_size={self.chunk_size}"

    def forward_local(self, local: Mapping[str, Tensor], gathered: Mapping[str, Tensor], rank_offset: int, *,
                      logit_scale, logit_bias=None, labels=None, mask=None) -> Tensor:
        """This rank's part of the loss under torchrun: its rows ``rank_offset…`` (``local``, ``(b, D)``)
        against the ``gathered`` ``(N, D)`` columns, ``mask`` gathered; see :mod:`._per_rank`. Collective."""
        from zoo.objectives._per_rank import clip_local
        return clip_local(local, gathered, rank_offset, logit_scale, mask=mask,
                          label_smoothing=self.label_smoothing, chunk_size=self.chunk_size)
