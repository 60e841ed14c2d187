"""Local-loss path for CLIP and SigLIP under torchrun: memory that does not grow with the world size.

Private (no registration): each rank's part of the loss, over the blocked kernels of
:mod:`._blocked`. The gather-everything path evaluates the ``(N, N)`` logits of the global batch
``N = world·b`` on every rank; here rank ``r`` evaluates only its own ``b`` rows
``R = [o, o+b)`` of the first view ``a`` against the ``N`` gathered columns of the second view
``B``, streaming over column blocks ``(b, c)``, so its pairwise memory is O(b·c) — constant in
the world size (plus the O(N·D) gathered embeddings and their gradient, which every method that
contrasts against the global batch holds).

**Exactness.** Every pair ``(i, j)`` of the global batch belongs to the rank that owns row ``i``.
The loss is split so that ``Σ_r loss_r = loss`` and the backward of rank ``r`` returns this rank's
share of the gradient of the *global* loss (the sum over its pairs of ``∂loss/∂L_ij · ∂L_ij``):

* SigLIP: the pairs are independent, ``loss_r = 1/N Σ_{i∈R} Σ_j softplus(−y_ij·Z_ij)``.
* CLIP: the row softmax of row ``i ∈ R`` is local. The column softmax of column ``j`` needs the
  log-sum-exp over all ``N`` rows: each rank computes the partial log-sum-exp of every column over
  its ``b`` rows and an all-reduce (max, then sum: ``(N,)`` floats, O(N) memory) gives the global
  ones. ``loss_r`` holds the row terms of ``R`` and the column terms of the columns ``j ∈ R``; the
  column softmax ``exp(L_ij − lse_j)`` of the pairs of ``R`` is this rank's part of every column
  term's gradient (a differentiable all-reduce would hand each rank ``∂loss/∂lse_j = 1/2N``, known
  in advance, so the backward needs no communication).

The gradients w.r.t. the gathered columns reach their owners through the all-gather's backward,
which sums over ranks. Scaled by ``world`` and averaged by DDP this is the single-process gradient
(see :func:`zoo.training.distributed.local_loss`). With one process (``o = 0``, gathered = local) both
functions equal :func:`.clip.clip_loss` and :func:`.siglip.siglip_loss`.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from zoo.objectives._autograd import SecondOrderError, no_autocast
from zoo.objectives._blocked import clip_lse_blocked, clip_products_blocked, rows_per_block
from zoo.objectives._collectives import all_reduce_logsumexp
from zoo.objectives._pair_inputs import local_pair, nothing_to_contrast, require_bias
from zoo.objectives.base import as_scalar
from zoo.objectives.clip import clip_value
from zoo.objectives.siglip import siglip_apply


def siglip_local(local: Mapping[str, Tensor], gathered: Mapping[str, Tensor], rank_offset: int,
                 logit_scale, logit_bias, *, mask=None, chunk_size: int | None = None) -> Tensor:
    """This rank's part of the SigLIP loss: rows ``rank_offset…`` of the first view against all columns,
    streamed in blocks of columns (see :class:`.siglip._SigLipFunction`)."""
    require_bias(logit_bias, "siglip (local)")
    a, cols, offset = local_pair(local, gathered, rank_offset, mask, "siglip (local)")
    if cols.shape[0] == 0:  # no row has both views on any rank
        return nothing_to_contrast(a, cols)
    scale, bias = as_scalar(logit_scale, a), as_scalar(logit_bias, a)
    return siglip_apply(a, cols, scale, bias, offset, chunk_size, stream_columns=True)


# ---------------------------------------------------------------- CLIP

class _ClipLocal(torch.autograd.Function):
    """``loss_r`` of symmetric InfoNCE; the forward all-reduces the column log-sum-exps (every rank
    must call it, also one without present rows), the backward recomputes each block."""

    @staticmethod
    def forward(ctx, a, cols, scale, offset, eps, chunk):
        with no_autocast(a):
            b, n = a.shape[0], cols.shape[0]
            ctx.offset, ctx.eps, ctx.c = offset, eps, rows_per_block(n, b, chunk, at_least=256)
            lse = clip_lse_blocked(a * scale, cols, ctx.c, offset)
            lse_cols = all_reduce_logsumexp(lse.cols)  # (N,) over the rows of every rank
            ctx.save_for_backward(a, cols, scale, lse.rows, lse_cols)
            col_gaps = lse.col_gaps if lse_cols is lse.cols else lse_cols[offset:offset + b] - lse.diag
            return clip_value(lse.row_gaps, col_gaps, lse.diag, a, cols, scale, eps)

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():
            raise SecondOrderError(
                "clip (local loss): second-order gradients (create_graph=True) are not available on the "
                "local-loss path (forward_local), whose column log-sum-exps span every rank. For a gradient "
                "penalty call the objective itself on embeddings gathered with zoo.training.distributed.gather_all, or "
                "use 'siglip', whose pairs are independent.")
        a, cols, scale, lse_rows, lse_cols = ctx.saved_tensors
        o, eps, b, n = ctx.offset, ctx.eps, a.shape[0], cols.shape[0]
        with no_autocast(a):
            ua, ub = clip_products_blocked(a * scale, a, cols, lse_rows, lse_cols, ctx.c)
            ua.sub_(cols[o:o + b], alpha=(1 - eps) / n).sub_(cols.sum(0), alpha=eps / n ** 2)  # (∂loss/∂L)·B
            ub[o:o + b] -= a * ((1 - eps) / n)  # (∂loss/∂L)ᵀ·a: the targets of the pairs of R
            ub.sub_(a.sum(0), alpha=eps / n ** 2)
            d_scale = grad * (a * ua).sum()
            return ua.mul_(grad * scale), ub.mul_(grad * scale), d_scale, None, None, None


def clip_local(local: Mapping[str, Tensor], gathered: Mapping[str, Tensor], rank_offset: int, logit_scale, *,
               mask=None, label_smoothing: float = 0.0, chunk_size: int | None = None) -> Tensor:
    """This rank's part of the CLIP loss (see the module docstring). Collective: every rank calls it."""
    a, cols, offset = local_pair(local, gathered, rank_offset, mask, "clip (local)")
    if cols.shape[0] == 0:  # no row has both views on any rank (the same on every rank)
        return nothing_to_contrast(a, cols)
    return _ClipLocal.apply(a, cols, as_scalar(logit_scale, a), offset, float(label_smoothing), chunk_size)
