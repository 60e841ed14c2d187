"""Local-loss path for CLIP and SigLIP under torchrun: memory that does not grow with the world size.

Private math (no registration). The gather-everything path evaluates the ``(N, N)`` logits of the
global batch ``N = world·b`` on every rank; here rank ``r`` evaluates only its own ``b`` rows
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

from zoo.errors import RecipeError, ShapeError
from zoo.objectives._autograd import SecondOrderError, compute_dtype, no_autocast
from zoo.objectives._blocked import _SLAB_ELEMENTS, clip_lse_blocked, clip_products_blocked, softplus_sum, spans
from zoo.objectives._collectives import all_reduce_logsumexp
from zoo.objectives.base import as_scalar, check_embeddings
from zoo.objectives.clip import clip_value
from zoo.objectives.siglip import save_siglip_gradients, scale_saved_gradients


def local_block(rows: int, n_cols: int, chunk: int | None) -> int:
    """Columns per block: ``chunk``, or a ~16 MiB (float32) block independent of ``N`` (≥ 256 columns)."""
    return max(1, min(n_cols, chunk or max(256, _SLAB_ELEMENTS // max(rows, 1))))


def local_pair(local: Mapping[str, Tensor], gathered: Mapping[str, Tensor], rank_offset: int,
               mask: Mapping[str, Tensor] | None, who: str) -> tuple[Tensor, Tensor, int]:
    """``(a_rows (b', D), b_columns (N', D), offset')``: this rank's present rows of the first view,
    the present global rows of the second, and where this rank's first present row sits among them.

    ``mask`` is the gathered one, ``{view: (N,) bool}``; a row counts where every view is present.
    """
    a_loc, _ = check_embeddings(local, min_views=2, max_views=2, who=who)
    check_embeddings(gathered, min_views=2, max_views=2, who=who)
    if list(local) != list(gathered):
        raise ShapeError(f"{who}: local and gathered embeddings must have the same views in the same order, "
                         f"got {list(local)} and {list(gathered)}.")
    va, vb = list(local)
    cols, b, n = gathered[vb], a_loc.shape[0], gathered[vb].shape[0]
    if not 0 <= rank_offset <= n - b:
        raise ShapeError(f"{who}: rank_offset expected in [0, {n - b}] (the {b} local rows lie inside the {n} "
                         f"gathered ones), got {rank_offset}.")
    if not mask:
        return a_loc, cols, rank_offset
    keep = torch.ones(n, dtype=torch.bool, device=cols.device)  # (N,)
    for view in (va, vb):
        if view in mask:
            if mask[view].shape != (n,):
                raise ShapeError(f"{who}: mask[{view!r}] expected the gathered shape ({n},), "
                                 f"got {tuple(mask[view].shape)}.")
            keep &= mask[view].to(device=cols.device, dtype=torch.bool)
    mine = keep[rank_offset:rank_offset + b]
    return a_loc[mine], cols[keep], int(keep[:rank_offset].sum())


def _promoted(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Both views in one dtype, at least float32 (the log-sum-exps are not done in half precision)."""
    dtype = compute_dtype(a, b)
    return a.to(dtype), b.to(dtype)


# ---------------------------------------------------------------- SigLIP

class _SigLipLocal(torch.autograd.Function):
    """``loss_r`` of SigLIP; its gradients are computed with the loss in one pass over column blocks."""

    @staticmethod
    def forward(ctx, a, cols, scale, bias, offset, chunk, with_grads):
        with no_autocast(a):
            b, n = a.shape[0], cols.shape[0]
            total, ga, gb, g_sum = _siglip_blocks(a * scale, a, cols, bias, local_block(b, n, chunk), with_grads)
            mine = cols[offset:offset + b]  # (b, D) the positives' columns
            diag = scale * (a * mine).sum() + b * bias  # Σ_i Z_{i,o+i}: softplus(−Z) = softplus(Z) − Z
            if with_grads:
                save_siglip_gradients(ctx, a, cols, ga, gb, g_sum, scale, offset,
                                      (a, cols, scale, bias, offset, chunk, with_grads))
            return (total - diag) / n

    @staticmethod
    def backward(ctx, grad):
        return scale_saved_gradients(ctx, grad, "siglip (local)")


def _siglip_blocks(sa: Tensor, a: Tensor, cols: Tensor, bias: Tensor, c: int, with_grads: bool):
    """``Σ softplus(Z)`` and, with grads, ``(σ(Z)·B, σ(Z)ᵀ·a, Σσ(Z))`` for ``Z = sa·Bᵀ + bias`` (b, N)."""
    total, g_sum = sa.new_zeros(()), sa.new_zeros(())
    ga = torch.zeros_like(a) if with_grads else None  # (b, D)
    gb = torch.empty_like(cols) if with_grads else None  # (N, D)
    for block in spans(cols.shape[0], c):
        z = torch.addmm(bias, sa, cols[block].T)  # (b, c)
        total += softplus_sum(z)
        if with_grads:
            g = z.sigmoid_()
            ga.addmm_(g, cols[block])
            torch.mm(g.T, a, out=gb[block])
            g_sum += g.sum()
    return total, ga, gb, g_sum


def siglip_local(local: Mapping[str, Tensor], gathered: Mapping[str, Tensor], rank_offset: int,
                 logit_scale, logit_bias, *, mask=None, chunk_size: int | None = None) -> Tensor:
    """This rank's part of the SigLIP loss: rows ``rank_offset…`` of the first view against all columns."""
    if logit_bias is None:
        raise RecipeError("siglip needs a logit_bias (the paper initialises it to -10): build the model with a "
                          "logit_bias (ContrastiveModel.logit_bias) and pass it, or use 'clip'.")
    a, cols, offset = local_pair(local, gathered, rank_offset, mask, "siglip (local)")
    if cols.shape[0] == 0:  # no row has both views on any rank
        return (a.sum() + cols.sum()) * 0.0
    a, cols = _promoted(a, cols)
    scale, bias = as_scalar(logit_scale, a), as_scalar(logit_bias, a)
    with_grads = torch.is_grad_enabled() and any(t.requires_grad for t in (a, cols, scale, bias))
    return _SigLipLocal.apply(a, cols, scale, bias, offset, chunk_size, with_grads)


# ---------------------------------------------------------------- CLIP

class _ClipLocal(torch.autograd.Function):
    """``loss_r`` of symmetric InfoNCE; the forward all-reduces the column log-sum-exps (every rank
    must call it, also one without present rows), the backward recomputes each block."""

    @staticmethod
    def forward(ctx, a, cols, scale, offset, eps, chunk):
        with no_autocast(a):
            b, n = a.shape[0], cols.shape[0]
            ctx.offset, ctx.eps, ctx.c = offset, eps, local_block(b, n, chunk)
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
        return (a.sum() + cols.sum()) * 0.0
    a, cols = _promoted(a, cols)
    return _ClipLocal.apply(a, cols, as_scalar(logit_scale, a), offset, float(label_smoothing), chunk_size)
