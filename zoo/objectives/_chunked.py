"""Private math shared by the CLIP-family objectives (not auto-imported, no registration).

Notation: ``a``, ``b`` are the two views ``(N, D)``, ``s`` the logit scale, ``sa = s·a`` and the
logits ``L = sa·bᵀ`` ``(N, N)``. The ``*_blocked`` functions never hold ``L``: they stream over
blocks of ``c`` whole columns (or rows) of shape ``(N, c)`` (the idea of Inf-CL, Cheng et al.
2024), so the peak memory is O(N·c) in the forward pass and, by recomputing blocks, the backward.

* CLIP: a column block holds whole columns, so its column log-sum-exp is exact at once; the row
  log-sum-exp is accumulated across blocks with ``logaddexp`` (streaming, numerically stable).
  The backward recomputes each block: three ``(N, c, D)`` GEMMs (logits, ``G·b``, ``Gᵀ·a``).
* SigLIP needs no normaliser, so loss and gradient products come out of one pass.
* Gradients are returned as the products ``G·b`` and ``Gᵀ·a`` of the ``(N, N)`` matrix ``G``
  (the softmax or sigmoid part of ``∂loss/∂L``); the callers subtract the targets' part in O(N·D).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

# rows per slab in the in-place passes over a dense (N, N) matrix: 16 MiB (float32) slabs stay in
# the L3 cache yet are few, so few parallel regions (fine slabs stall when the cores are shared)
_SLAB_ELEMENTS = 1 << 22


def column_blocks(n: int, chunk: int) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` of length ``chunk`` (the last may be shorter)."""
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def row_slabs(n_rows: int, n_cols: int) -> Iterator[slice]:
    """Row slices of an ``(n_rows, n_cols)`` matrix, each about ``_SLAB_ELEMENTS`` elements."""
    return column_blocks(n_rows, max(1, _SLAB_ELEMENTS // max(n_cols, 1)))


def softplus_sum(x: Tensor) -> Tensor:
    """``Σ log(1 + eˣ)``, exact to the last bit of ``x``'s dtype (torch's linear cut-off moved up)."""
    cutoff = 40.0 if x.dtype == torch.float64 else 20.0  # log1p(e^-cutoff) < eps · cutoff
    return F.softplus(x, beta=1.0, threshold=cutoff).sum()


# ---------------------------------------------------------------- CLIP (softmax both ways)

def transposed_blocks(sa: Tensor, b: Tensor, chunk: int) -> Iterator[tuple[slice, Tensor]]:
    """``(cols, L[:, cols]ᵀ)`` for each block of columns, as ``(c, N)`` views of ONE reused buffer.

    Transposed, a block is a contiguous run of rows, so the last (shorter) one is a view too and
    no block allocates: large blocks would otherwise pay fresh page faults every time.
    """
    n = sa.shape[0]
    buffer = sa.new_empty(min(chunk, n), n)
    for cols in column_blocks(n, chunk):
        block = buffer[: cols.stop - cols.start]  # (c, N)
        torch.mm(b[cols], sa.T, out=block)
        yield cols, block


def _logsumexp(x: Tensor, dim: int, scratch: Tensor) -> Tensor:
    """``torch.logsumexp(x, dim)`` with its exponentials written to ``scratch`` (no allocation)."""
    top = x.amax(dim, keepdim=True)
    total = torch.sub(x, top, out=scratch).exp_().sum(dim)
    return total.log_().add_(top.squeeze(dim))


def clip_lse_blocked(sa: Tensor, b: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    """Row and column log-sum-exp of ``L = sa·bᵀ``, streaming over blocks of ``chunk`` columns."""
    n = sa.shape[0]
    lse_rows = sa.new_full((n,), float("-inf"))  # (N,)
    lse_cols = sa.new_empty(n)  # (N,)
    scratch = sa.new_empty(min(chunk, n), n)
    for cols, block in transposed_blocks(sa, b, chunk):  # block: (c, N)
        tmp = scratch[: block.shape[0]]
        lse_cols[cols] = _logsumexp(block, 1, tmp)
        lse_rows = torch.logaddexp(lse_rows, _logsumexp(block, 0, tmp))
    return lse_rows, lse_cols


def clip_products_blocked(sa: Tensor, a: Tensor, b: Tensor, lse_rows: Tensor, lse_cols: Tensor,
                          chunk: int) -> tuple[Tensor, Tensor]:
    """``(G·b, Gᵀ·a)`` for ``G = (softmax_rows(L) + softmax_cols(L)) / 2N``, block by block."""
    n = sa.shape[0]
    gb = torch.zeros_like(b)  # (N, D)
    gta = torch.empty_like(a)  # (N, D)
    scratch = sa.new_empty(min(chunk, n), n)
    for cols, block in transposed_blocks(sa, b, chunk):  # block: L[:, cols]ᵀ, (c, N)
        g = torch.sub(block, lse_rows[None, :], out=scratch[: block.shape[0]]).exp_()  # row softmax
        g.add_(block.sub_(lse_cols[cols, None]).exp_()).mul_(0.5 / n)  # + column softmax: Gᵀ block
        gb.addmm_(g.T, b[cols])
        torch.mm(g, a, out=gta[cols])  # (c, D)
    return gb, gta


# ---------------------------------------------------------------- SigLIP (sigmoid per pair)

def siglip_rows_per_block(n: int, chunk: int | None) -> int:
    """``chunk`` rows, or by default enough for a ~16 MiB block (at least 256 rows, for fast GEMMs)."""
    return min(n, chunk or max(256, _SLAB_ELEMENTS // max(n, 1)))


def siglip_blocked(sa: Tensor, a: Tensor, b: Tensor, bias: Tensor, rows_per_block: int,
                   with_grads: bool) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
    """``Σ softplus(Z)`` and, if ``with_grads``, ``(G·b, Gᵀ·a, ΣG)`` for ``G = σ(Z)``, ``Z = sa·bᵀ + bias``.

    One pass over row blocks ``Z[rows, :]``: each block's sigmoid is used for both products while it
    is still in cache, and no ``(N, N)`` matrix is ever allocated.
    """
    total, g_sum = sa.new_zeros(()), sa.new_zeros(())
    gb = torch.empty_like(b) if with_grads else None  # (N, D)
    gta = torch.zeros_like(a) if with_grads else None  # (N, D)
    buffer = sa.new_empty(rows_per_block, sa.shape[0])  # reused: no page faults per block
    for rows in column_blocks(sa.shape[0], rows_per_block):
        z = torch.addmm(bias, sa[rows], b.T, out=buffer[: rows.stop - rows.start])  # (k, N)
        total += softplus_sum(z)
        if with_grads:
            g = z.sigmoid_()
            torch.mm(g, b, out=gb[rows])
            gta.addmm_(g.T, a[rows])
            g_sum += g.sum()
    return total, gb, gta, g_sum
