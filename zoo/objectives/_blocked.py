"""Blocked kernels of CLIP and SigLIP: log-sum-exps and gradient products without the ``(N, N)`` logits.

Private math shared by :mod:`.clip`, :mod:`.siglip` and :mod:`._per_rank` (no registration).

Notation: ``a``, ``b`` are the two views ``(N, D)``, ``s`` the logit scale, ``sa = s·a`` and the
logits ``L = sa·bᵀ`` ``(N, N)``. The ``*_blocked`` functions never hold ``L``: they stream over
blocks of ``c`` whole columns (or rows) of shape ``(N, c)`` (the idea of Inf-CL, Cheng et al.
2024), so the peak memory is O(N·c) in the forward pass and, by recomputing blocks, the backward.

* CLIP: a column block holds whole columns, so its column log-sum-exp is exact at once; the row
  log-sum-exp is streamed across blocks as a running max and a rescaled sum of exponentials.
  The loss is built from the gaps ``lse_i − L_ii`` (each ≥ 0, the positive taken from the logits
  the GEMM produced and subtracted from the max before the log-sum is added), never as a large
  log-sum-exp minus a separately summed positive term, which cancels in low precision or at
  large scales. The backward recomputes each block: three ``(N, c, D)`` GEMMs (logits, ``G·b``,
  ``Gᵀ·a``). The same functions serve the local-loss path (``b`` rows of ``a`` against ``N``
  columns, positives at ``offset + i``, see :mod:`._per_rank`).
* SigLIP needs no normaliser, so loss and gradient products come out of one pass over row blocks
  of ``Z`` (the whole batch) or of ``Zᵀ`` (one rank's rows against the gathered columns).
* Gradients are returned as the products ``G·b`` and ``Gᵀ·a`` of the ``(N, N)`` matrix ``G``
  (the softmax or sigmoid part of ``∂loss/∂L``); the callers subtract the targets' part in O(N·D).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

# elements of one block (or slab) of logits: 16 MiB (float32) blocks stay in the L3 cache yet are
# few, so few parallel regions (fine slabs stall when the cores are shared)
BLOCK_ELEMENTS = 1 << 22


def spans(n: int, chunk: int) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` of length ``chunk`` (the last may be shorter)."""
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def rows_per_block(n_rows: int, row_length: int, chunk: int | None = None, *, at_least: int = 1,
                   elements: int = BLOCK_ELEMENTS) -> int:
    """Rows per block of an ``(n_rows, row_length)`` matrix: ``chunk``, or by default about ``elements``
    elements but at least ``at_least`` rows (256 keeps the GEMMs fast); never more than ``n_rows``."""
    return max(1, min(n_rows, chunk or max(at_least, elements // max(row_length, 1))))


def row_slabs(n_rows: int, n_cols: int) -> Iterator[slice]:
    """Row slices of an ``(n_rows, n_cols)`` matrix, each about ``BLOCK_ELEMENTS`` elements."""
    return spans(n_rows, rows_per_block(n_rows, n_cols))


def softplus_sum(x: Tensor) -> Tensor:
    """``Σ log(1 + eˣ)``, exact to the last bit of ``x``'s dtype (torch's linear cut-off moved up)."""
    cutoff = 40.0 if x.dtype == torch.float64 else 20.0  # log1p(e^-cutoff) < eps · cutoff
    return F.softplus(x, beta=1.0, threshold=cutoff).sum()


# ---------------------------------------------------------------- CLIP (softmax both ways)

def transposed_blocks(sa: Tensor, cols: Tensor, chunk: int) -> Iterator[tuple[slice, Tensor]]:
    """``(block, L[:, block]ᵀ)`` for each block of columns of ``L = sa·colsᵀ`` ``(b, N)``, as
    ``(c, b)`` views of ONE reused buffer.

    Transposed, a block is a contiguous run of rows, so the last (shorter) one is a view too and
    no block allocates: large blocks would otherwise pay fresh page faults every time.
    """
    n = cols.shape[0]
    buffer = sa.new_empty(min(chunk, n), sa.shape[0])
    for block in spans(n, chunk):
        out = buffer[: block.stop - block.start]  # (c, b)
        torch.mm(cols[block], sa.T, out=out)
        yield block, out


def _sum_exp(x: Tensor, dim: int, scratch: Tensor) -> tuple[Tensor, Tensor]:
    """``(Σ exp(x − top), top)`` along ``dim``, ``top = max x``; the exponentials go to ``scratch``."""
    top = x.amax(dim, keepdim=True)
    total = torch.sub(x, top, out=scratch).exp_().sum(dim)
    return total, top.squeeze(dim)


class ClipLse(NamedTuple):
    """Log-sum-exps of ``L = s·a·colsᵀ`` ``(b, N)`` whose positive of row ``i`` is ``L[i, o+i]``."""

    rows: Tensor  # (b,) log-sum-exp of each row over all N columns
    cols: Tensor  # (N,) log-sum-exp of each column over the b rows (partial when b < N)
    row_gaps: Tensor  # (b,) rows[i] − L[i, o+i] ≥ 0, computed without cancellation
    col_gaps: Tensor  # (b,) cols[o+i] − L[i, o+i], exact when b = N (else a partial column)
    diag: Tensor  # (b,) the positives L[i, o+i], as the logits GEMM computed them


def clip_lse_blocked(sa: Tensor, cols: Tensor, chunk: int, offset: int = 0) -> ClipLse:
    """:class:`ClipLse` of ``L = sa·colsᵀ``, streaming over blocks of ``chunk`` columns.

    A block holds whole columns, so each column's log-sum-exp is exact at once; each row's is
    streamed as ``top + log S`` (the running row max and the sum of ``exp(L − top)``, rescaled when
    the max grows). The gaps subtract the positive from the max *before* adding ``log S``, so a
    dominant positive gives exactly 0 at any scale (no ``lse − L_ii`` of two large numbers).
    """
    b, n = sa.shape[0], cols.shape[0]
    if b == 0:  # a rank without present rows: its partial column log-sum-exps are −inf
        none = sa.new_empty(0)
        return ClipLse(rows=none, cols=sa.new_full((n,), float("-inf")), row_gaps=none, col_gaps=none, diag=none)
    top = sa.new_full((b,), float("-inf"))  # (b,) running row max
    total = sa.new_zeros(b)  # (b,) Σ exp(L − top) so far
    diag = sa.new_empty(b)  # (b,)
    col_sums, col_tops = sa.new_empty(n), sa.new_empty(n)  # (N,)
    scratch = sa.new_empty(min(chunk, n), b)
    for block, logits in transposed_blocks(sa, cols, chunk):  # logits: L[:, block]ᵀ, (c, b)
        lo, hi = max(block.start - offset, 0), min(block.stop - offset, b)  # rows whose positive is here
        if lo < hi:
            diag[lo:hi] = logits.diagonal(block.start - offset)
        tmp = scratch[: logits.shape[0]]
        col_sums[block], col_tops[block] = _sum_exp(logits, 1, tmp)
        block_sums, block_tops = _sum_exp(logits, 0, tmp)  # (b,)
        new_top = torch.maximum(top, block_tops)
        total = total.mul_(torch.exp(top - new_top)).add_(block_sums.mul_(torch.exp(block_tops - new_top)))
        top = new_top
    log_rows, log_cols = total.log_(), col_sums.log_()
    mine = slice(offset, offset + b)
    return ClipLse(rows=log_rows + top, cols=log_cols + col_tops, row_gaps=log_rows + (top - diag),
                   col_gaps=log_cols[mine] + (col_tops[mine] - diag), diag=diag)


def clip_products_blocked(sa: Tensor, a: Tensor, cols: Tensor, lse_rows: Tensor, lse_cols: Tensor,
                          chunk: int) -> tuple[Tensor, Tensor]:
    """``(G·cols (b, D), Gᵀ·a (N, D))`` for ``G = (softmax_rows(L) + softmax_cols(L)) / 2N`` on the b rows."""
    n = cols.shape[0]
    g_cols = torch.zeros_like(a)  # (b, D)
    gt_a = torch.empty_like(cols)  # (N, D)
    scratch = sa.new_empty(min(chunk, n), sa.shape[0])
    for block, logits in transposed_blocks(sa, cols, chunk):  # L[:, block]ᵀ, (c, b)
        g = torch.sub(logits, lse_rows[None, :], out=scratch[: logits.shape[0]]).exp_()  # row softmax
        g.add_(logits.sub_(lse_cols[block, None]).exp_()).mul_(0.5 / n)  # + column softmax: Gᵀ block
        g_cols.addmm_(g.T, cols[block])
        torch.mm(g, a, out=gt_a[block])  # (c, D)
    return g_cols, gt_a


# ---------------------------------------------------------------- SigLIP (sigmoid per pair)

def siglip_blocked(x: Tensor, y: Tensor, bias: Tensor, x_plain: Tensor, y_plain: Tensor, rows_per_block: int,
                   with_grads: bool) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
    """``Σ softplus(Z)`` and, if ``with_grads``, ``(G·y_plain (n_x, D), Gᵀ·x_plain (n_y, D), ΣG)`` for
    ``G = σ(Z)``, ``Z = x·yᵀ + bias`` ``(n_x, n_y)``.

    One of ``x``, ``y`` carries the logit scale, the ``*_plain`` tensors are the same rows without
    it. :mod:`.siglip` streams ``Z`` itself (``x = s·a``, ``y = b``); a rank of the local-loss path
    streams ``Zᵀ`` (``x`` = the gathered columns, ``y = s·a``: blocks of columns, so memory does not
    grow with the world size). One pass over row blocks ``Z[rows, :]``: each block's sigmoid is used
    for both products while it is still in cache, and no ``(n_x, n_y)`` matrix is ever allocated.
    """
    total, g_sum = x.new_zeros(()), x.new_zeros(())
    g_y = torch.empty_like(x_plain) if with_grads else None  # (n_x, D)
    gt_x = torch.zeros_like(y_plain) if with_grads else None  # (n_y, D)
    buffer = x.new_empty(rows_per_block, y.shape[0])  # reused: no page faults per block
    for rows in spans(x.shape[0], rows_per_block):
        z = torch.addmm(bias, x[rows], y.T, out=buffer[: rows.stop - rows.start])  # (k, n_y)
        total += softplus_sum(z)
        if with_grads:
            g = z.sigmoid_()
            torch.mm(g, y_plain, out=g_y[rows])
            gt_x.addmm_(g.T, x_plain[rows])
            g_sum += g.sum()
    return total, g_y, gt_x, g_sum
