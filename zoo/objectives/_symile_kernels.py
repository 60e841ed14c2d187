"""Symile kernels: blocked log-sum-exps over multilinear inner products (MIP), hand-written backward.

Private math of :mod:`.symile` (no registration).

Notation: ``M`` views ``x_0 … x_{M−1}``, ``x_m`` of shape ``(n_m, D)``, scale ``s``. The logits
tensor over every combination of rows is::

    T[i_0, …, i_{M−1}] = s · Σ_d x_0[i_0, d] · x_1[i_1, d] ⋯ x_{M−1}[i_{M−1}, d]

For O(N²) negatives each view ``m`` is in turn the anchor: its row ``i`` is scored against every
combination of the other views' rows, so the anchor-``m`` log-partition ``LSE_m[i]`` is the
log-sum-exp of ``T`` over every axis but ``m``. All ``M`` anchor terms share the one tensor ``T``:

* ``T`` is never held whole. It is built in blocks of ``c`` rows of ``x_0``:
  ``P = x_0[rows] ⊗ x_1 ⊗ ⋯ ⊗ x_{M−2}`` (row-wise products of every combination, shape
  ``(c, n_1, …, n_{M−2}, D)``) then ONE GEMM ``P · x_{M−1}ᵀ`` (no ``N^{M−1}×D`` intermediate).
* Per block, one ``exp`` with a per-row shift ``r_i = max T[i, …]`` serves all ``M`` log-sum-exps:
  ``LSE_0`` is complete within the block, the others are streamed across blocks with ``logaddexp``.
* The backward pass is written by hand: ``G = ∂loss/∂T = E ⊙ Σ_m coef_m`` (``E = exp(T − r)``),
  then ``∂x_{M−1} = Gᵀ·P`` and ``H = G·x_{M−1}``, from which every other view's gradient is a
  cheap contraction of ``H`` (no second big GEMM), and ``∂s = Σ x_0 ⊙ ∂x_0 / s``.
  For M = 3 that is 3 GEMMs of ``N³·D`` in all, where autograd over per-anchor logits needs 9.
* ``E`` is kept for the backward pass when it is small (``save_elements``), else recomputed.

One shared shift per row is exact while the logits span less than ``½·ln(1/tiny)`` (43 in float32,
354 in float64) above the weighted rows' log-partitions; beyond that the float32 computation is
redone in float64, and beyond float64's range a ``ShapeError`` (a ``ValueError``) says why.

For O(N) negatives (:class:`RowLse`) each anchor has one ``(N, N)`` logits matrix whose diagonal
is replaced by the positives; only row log-sum-exps are needed, streamed in row blocks.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from zoo.errors import ShapeError
from zoo.objectives._autograd import graph_of_gradient, no_autocast
from zoo.objectives._blocked import BLOCK_ELEMENTS, rows_per_block, spans

CHUNK_ELEMENTS = BLOCK_ELEMENTS  # elements of one block of logits or products: 16 MiB in float32
SAVE_ELEMENTS = 1 << 24  # keep exp(logits) for the backward pass up to this many elements


def block_rows(xs: Sequence[Tensor], chunk_elements: int) -> int:
    """Rows of ``x_0`` per block so that a block's ``P`` and ``T`` hold ≤ ``chunk_elements`` each."""
    per_row = math.prod(x.shape[0] for x in xs[1:-1]) * max(xs[0].shape[1], xs[-1].shape[0])
    return max(1, chunk_elements // max(per_row, 1))


def broadcast_view(x: Tensor, axis: int, n_axes: int) -> Tensor:
    """``x (n, D)`` viewed to broadcast along ``axis`` of an ``(…n_axes…, D)`` tensor."""
    shape = [1] * n_axes + [x.shape[-1]]
    shape[axis] = x.shape[0]
    return x.view(shape)


def outer_rows(factors: Sequence[Tensor]) -> Tensor:
    """``P[i_0, …, i_{K−1}] = f_0[i_0] ⊙ ⋯ ⊙ f_{K−1}[i_{K−1}]``, shape ``(n_0, …, n_{K−1}, D)``."""
    k = len(factors)
    out = broadcast_view(factors[0], 0, k)
    for axis in range(1, k):
        out = out * broadcast_view(factors[axis], axis, k)
    return out


def block_logits(first: Tensor, middle: Sequence[Tensor], last: Tensor) -> tuple[Tensor, Tensor]:
    """``T`` block ``(c, n_1, …, n_{M−1})`` and its products ``P (c, n_1, …, n_{M−2}, D)``."""
    p = outer_rows([first, *middle])  # (c, n_1, …, D)
    t = p.reshape(-1, p.shape[-1]) @ last.T  # (c·n_1⋯, n_last): the one GEMM
    return t.view(*p.shape[:-1], last.shape[0]), p


def contract_except(h: Tensor, factors: Sequence[Tensor], axis: int) -> Tensor:
    """``Σ`` over every axis but ``axis`` of ``h ⊙ Π_{q≠axis} factors[q]`` → ``(n_axis, D)``."""
    k = len(factors)
    for q in range(k):
        if q != axis:
            h = h * broadcast_view(factors[q], q, k)
    other = tuple(q for q in range(k) if q != axis)
    return h.sum(other) if other else h


# ---------------------------------------------------------------- O(N^(M-1)) negatives

def mip_lse_forward(xs: Sequence[Tensor], scale: Tensor, rows: int,
                    keep: bool) -> tuple[list[Tensor], Tensor, list[Tensor] | None]:
    """Every anchor's log-partition ``LSE_m (n_m,)``, the row shifts ``r (n_0,)``, kept blocks of E."""
    first, middle, last = xs[0] * scale, xs[1:-1], xs[-1]
    lse = [x.new_full((x.shape[0],), float("-inf")) for x in xs]
    shifts = first.new_empty(first.shape[0])  # (n_0,)
    kept: list[Tensor] | None = [] if keep else None
    for block in spans(first.shape[0], rows):
        t, _ = block_logits(first[block], middle, last)  # (c, n_1, …, n_last)
        axes = tuple(range(1, t.dim()))
        r = t.amax(dim=axes)  # (c,)
        e = t.sub_(r.view(-1, *[1] * len(axes))).exp_()  # E = exp(T − r), in place
        for axis in axes:  # anchors 1…M−1: partial sums over this block's rows, streamed
            part = e.sum(tuple(a for a in axes if a != axis)) if len(axes) > 1 else e  # (c, n_axis)
            if axis == 1:
                lse[0][block] = part.sum(1).log_().add_(r)  # anchor 0: complete within the block
            part = torch.logsumexp(part.log() + r[:, None], dim=0)  # (n_axis,)
            lse[axis] = torch.logaddexp(lse[axis], part)
        shifts[block] = r
        if kept is not None:
            kept.append(e)
    return lse, shifts, kept


def shift_is_exact(lse: Sequence[Tensor], weights: Sequence[Tensor], shifts: Tensor) -> bool:
    """One shift per row is exact when the logits rise < ½·ln(1/tiny) above any used log-partition."""
    floors = [l[w > 0] for l, w in zip(lse, weights)]
    floor = min(f.min().item() for f in floors if f.numel())
    limit = 0.5 * math.log(1.0 / torch.finfo(shifts.dtype).tiny)
    gap = shifts.max().item() - floor
    return math.isnan(gap) or gap <= limit  # NaN inputs: nothing a wider dtype would fix


def block_coefficients(r: Tensor, lse: Sequence[Tensor], log_w: Sequence[Tensor], block: slice) -> Tensor:
    """``Σ_m w_m[i_m]·exp(r_i − LSE_m[i_m])`` broadcast to a block ``(c, n_1, …)``: ``G = E ⊙ this``."""
    k = len(lse) - 1
    coef = torch.exp(r - lse[0][block] + log_w[0][block]).view(-1, *[1] * k)  # (c, 1, …) anchor 0
    for axis in range(1, k + 1):
        c_axis = torch.exp(r[:, None] - lse[axis][None, :] + log_w[axis][None, :])  # (c, n_axis)
        shape = [c_axis.shape[0]] + [1] * k
        shape[axis] = c_axis.shape[1]
        coef = coef + c_axis.view(shape)
    return coef


def mip_lse_backward(xs: Sequence[Tensor], scale: Tensor, lse: Sequence[Tensor], weights: Sequence[Tensor],
                     shifts: Tensor, kept: list[Tensor] | None, rows: int) -> tuple[list[Tensor], Tensor]:
    """Gradients of ``Σ_m Σ_i w_m[i]·LSE_m[i]`` w.r.t. every view and the scale."""
    first, middle, last = xs[0] * scale, xs[1:-1], xs[-1]
    k = len(xs) - 1  # leading axes of P
    log_w = [w.log() for w in weights]  # −inf where w = 0: those coefficients vanish whatever LSE is
    lse = [torch.where(w > 0, l, 0.0) for l, w in zip(lse, weights)]
    grads = [torch.zeros_like(x) for x in xs]
    for b, block in enumerate(spans(first.shape[0], rows)):
        r = shifts[block]  # (c,)
        if kept is not None:
            e, p = kept[b], outer_rows([first[block], *middle])
        else:
            t, p = block_logits(first[block], middle, last)
            e = t.sub_(r.view(-1, *[1] * k)).exp_()
        g = e.mul_(block_coefficients(r, lse, log_w, block))  # G = ∂/∂T, in place of E
        g2 = g.view(-1, last.shape[0])  # (c·n_1⋯, n_last)
        grads[-1].addmm_(g2.T, p.reshape(-1, p.shape[-1]))  # Gᵀ·P (P carries s)
        h = (g2 @ last).view(p.shape)  # H = G·x_last (c, n_1, …, D)
        factors = [first[block], *middle]
        grads[0][block] = contract_except(h, factors, 0)  # without s (added below)
        for axis in range(1, k):
            grads[axis] += contract_except(h, factors, axis)
    d_scale = (xs[0] * grads[0]).sum()
    grads[0].mul_(scale)
    return grads, d_scale


def mip_reference(rows, save_elements, n_views, scale, *tensors) -> Tensor:
    """Plain-autograd :class:`MipLse` (the whole logits tensor at once): the graph for second-order gradients."""
    xs, weights = tensors[:n_views], tensors[n_views:]
    t, _ = block_logits(xs[0] * scale, xs[1:-1], xs[-1])  # (n_0, …, n_{M−1})
    axes = range(t.dim())
    lse = [torch.logsumexp(t, dim=[q for q in axes if q != m]) if t.dim() > 1 else t for m in axes]
    return sum((w * torch.where(w > 0, l, 0.0)).sum() for w, l in zip(weights, lse))


class MipLse(torch.autograd.Function):
    """``Σ_m Σ_i w_m[i]·LSE_m[i]`` over the MIP logits of every row combination (hand-written backward).

    ``apply(rows, save_elements, n_views, scale, *xs, *weights)``.
    """

    @staticmethod
    def forward(ctx, rows, save_elements, n_views, scale, *tensors):
        with no_autocast(scale):
            xs, weights = list(tensors[:n_views]), list(tensors[n_views:])
            keep = math.prod(x.shape[0] for x in xs) <= save_elements
            ctx.upcast = None
            lse, shifts, kept = mip_lse_forward(xs, scale, rows, keep)
            if not shift_is_exact(lse, weights, shifts) and xs[0].dtype != torch.float64:
                ctx.upcast = xs[0].dtype  # redo the whole computation in float64
                xs, weights, s64 = [x.double() for x in xs], [w.double() for w in weights], scale.double()
                lse, shifts, kept = mip_lse_forward(xs, s64, rows, keep)
            if not shift_is_exact(lse, weights, shifts):
                raise ShapeError("symile: the MIP logits span more than float64 can exponentiate with one shift "
                                 "per row (logit_scale × MIP range > 354). Pass L2-normalised embeddings and keep "
                                 "logit_scale ≤ 100 (clamp it as CLIP does).")
            ctx.kept, ctx.rows, ctx.n_views, ctx.save_elements = kept, rows, n_views, save_elements
            ctx.save_for_backward(scale, shifts, *tensors, *lse)  # the inputs as given (float64 is redone)
            value = sum((w * torch.where(w > 0, l, 0.0)).sum() for w, l in zip(weights, lse))
            return value.to(ctx.upcast) if ctx.upcast else value

    @staticmethod
    def backward(ctx, grad):
        scale, shifts, *rest = ctx.saved_tensors
        m = ctx.n_views
        tensors, lse = rest[:2 * m], rest[2 * m:]
        if torch.is_grad_enabled():  # create_graph=True
            inputs = (ctx.rows, ctx.save_elements, m, scale, *tensors)
            return graph_of_gradient(mip_reference, inputs, ctx.needs_input_grad, grad)
        kept, ctx.kept = ctx.kept, None  # consumed in place; a second backward recomputes
        with no_autocast(scale):
            if ctx.upcast:
                tensors, scale = [t.double() for t in tensors], scale.double()
            xs, weights = tensors[:m], tensors[m:]
            grads, d_scale = mip_lse_backward(xs, scale, lse, weights, shifts, kept, ctx.rows)
            grad = grad.to(scale.dtype)
            out = [(g * grad).to(ctx.upcast or g.dtype) for g in grads]
            d_scale = (d_scale * grad).to(ctx.upcast or d_scale.dtype)
        return (None, None, None, d_scale, *out, *[None] * m)


def mip_lse(xs: Sequence[Tensor], weights: Sequence[Tensor], scale: Tensor, *,
            chunk_elements: int = CHUNK_ELEMENTS, save_elements: int = SAVE_ELEMENTS) -> Tensor:
    """``Σ_m Σ_i w_m[i]·LSE_m[i]``: ``LSE_m[i]`` = log-sum-exp of ``T`` over every axis but ``m``.

    ``xs``: ``M ≥ 2`` tensors ``(n_m, D)`` of one dtype; ``weights``: ``(n_m,)`` ≥ 0; ``scale`` 0-d.
    """
    rows = block_rows(xs, chunk_elements)
    return MipLse.apply(rows, save_elements, len(xs), scale, *xs, *weights)


# ---------------------------------------------------------------- O(N) negatives

def row_logits(sa: Tensor, q: Tensor, diag: Tensor, bias: Tensor | None, block: slice) -> Tensor:
    """Rows ``block`` of ``L = sa·qᵀ (+ column bias)`` with ``L_ii`` replaced by ``diag_i``."""
    t = sa[block] @ q.T  # (c, N)
    if bias is not None:
        t += bias
    own = torch.arange(block.start, block.stop, device=t.device)
    t[own - block.start, own] = diag[block].to(t.dtype)  # autocast: the GEMM may run in bf16/fp16
    return t


def row_reference(rows, save_elements, a, q, diag, scale, bias, w) -> Tensor:
    """Plain-autograd :class:`RowLse` (the whole ``(N, N)`` logits): the graph for second-order gradients."""
    logits = scale * a @ q.T  # (N, N)
    if bias is not None:
        logits = logits + bias
    eye = torch.eye(a.shape[0], dtype=torch.bool, device=a.device)
    lse = torch.logsumexp(torch.where(eye, diag[:, None], logits), dim=1)  # (N,)
    return (w * torch.where(w > 0, lse, 0.0)).sum()


class RowLse(torch.autograd.Function):
    """``Σ_i w_i·LSE_j(L_ij)`` for ``L = s·a·qᵀ`` with diagonal ``diag`` (hand-written backward).

    ``apply(rows, save_elements, a, q, diag, scale, bias, w)``; ``bias (N,)`` is 0 or −inf per
    column (−inf drops a candidate; the diagonal is always kept) or ``None``.
    """

    @staticmethod
    def forward(ctx, rows, save_elements, a, q, diag, scale, bias, w):
        with no_autocast(a):
            return RowLse._forward(ctx, rows, save_elements, a, q, diag, scale, bias, w)

    @staticmethod
    def _forward(ctx, rows, save_elements, a, q, diag, scale, bias, w):
        sa = a * scale
        n = a.shape[0]
        keep = n * n <= save_elements
        lse, shifts, kept = a.new_empty(n), a.new_empty(n), [] if keep else None
        for block in spans(n, rows):
            t = row_logits(sa, q, diag, bias, block)  # (c, N)
            r = t.amax(dim=1)  # (c,) exact per-row shift
            e = t.sub_(r[:, None]).exp_()
            lse[block] = e.sum(1).log_().add_(r)
            shifts[block] = r
            if kept is not None:
                kept.append(e)
        ctx.kept, ctx.rows = kept, rows
        ctx.save_for_backward(a, q, diag, scale, bias, w, lse, shifts)
        return (w * torch.where(w > 0, lse, 0.0)).sum()

    @staticmethod
    def backward(ctx, grad):
        a, q, diag, scale, bias, w, lse, shifts = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            inputs = (ctx.rows, None, a, q, diag, scale, bias, w)
            return graph_of_gradient(row_reference, inputs, ctx.needs_input_grad, grad)
        with no_autocast(a):
            return RowLse._backward(ctx, grad, a, q, diag, scale, bias, w, lse, shifts)

    @staticmethod
    def _backward(ctx, grad, a, q, diag, scale, bias, w, lse, shifts):
        kept, ctx.kept = ctx.kept, None
        sa = a * scale
        coef = torch.exp(shifts - torch.where(w > 0, lse, 0.0) + w.log())  # (N,) w_i·e^{r_i − LSE_i}
        da, dq, d_diag = torch.empty_like(a), torch.zeros_like(q), torch.empty_like(diag)
        for b, block in enumerate(spans(a.shape[0], ctx.rows)):
            if kept is not None:
                e = kept[b]
            else:
                e = row_logits(sa, q, diag, bias, block).sub_(shifts[block, None]).exp_()
            g = e.mul_(coef[block, None])  # (c, N) ∂/∂L
            own = torch.arange(block.start, block.stop, device=g.device)
            d_diag[block] = g[own - block.start, own]
            g[own - block.start, own] = 0.0  # the diagonal is diag's, not a·q's
            da[block] = g @ q  # without s
            dq.addmm_(g.T, sa[block])
        d_scale = (a * da).sum() * grad
        return None, None, da.mul_(scale * grad), dq.mul_(grad), d_diag.mul_(grad), d_scale, None, None


def row_lse(a: Tensor, q: Tensor, diag: Tensor, scale: Tensor, w: Tensor, bias: Tensor | None = None, *,
            chunk_elements: int = CHUNK_ELEMENTS, save_elements: int = SAVE_ELEMENTS) -> Tensor:
    """``Σ_i w_i·log Σ_j exp(L_ij)``, ``L_ij = s·a_i·q_j (+ bias_j)`` for ``j ≠ i``, ``L_ii = diag_i``."""
    rows = rows_per_block(a.shape[0], a.shape[0], elements=chunk_elements)
    return RowLse.apply(rows, save_elements, a, q, diag, scale, bias, w)
