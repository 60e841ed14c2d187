"""SigLIP: the pairwise sigmoid loss (Zhai et al. 2023), with a hand-written backward.

Every pair ``(i, j)`` is an independent binary problem, so ``∂loss/∂Z_ij = (σ(Z_ij) − [i = j]) / N``
with ``Z = s·a·bᵀ + t``. One pass over row blocks of ``Z`` (see :mod:`._blocked`) computes the
loss *and* the gradient products ``σ(Z)·b``, ``σ(Z)ᵀ·a`` while each block is in cache: three
``N×N×D`` matrix products in all, no ``(N, N)`` matrix allocated (memory O(N·block)), where
autograd allocates several ``(N, N)`` temporaries. The backward only scales the stored gradients.
The gradient is therefore computed with the loss whenever gradients are enabled and an input
requires them (under ``torch.no_grad()`` only the loss is computed).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import GradientError
from zoo.objectives._autograd import graph_of_gradient, no_autocast
from zoo.objectives._blocked import rows_per_block, siglip_blocked
from zoo.objectives._pair_inputs import check_chunk_size, nothing_to_contrast, pair_inputs, present_views, require_bias
from zoo.objectives.base import full_precision, register_objective


def siglip_reference(a: Tensor, cols: Tensor, scale: Tensor, bias: Tensor, offset: int = 0, *_) -> Tensor:
    """Plain-autograd SigLIP of the rows of ``a`` (positives at ``cols[offset + i]``): the graph for
    second-order gradients. ``−1/N Σ_ij log σ(y_ij·Z_ij)``, ``N`` = the number of columns."""
    n, b = cols.shape[0], a.shape[0]
    z = scale * a @ cols.T + bias  # (b, N)
    rows = torch.arange(b, device=a.device)
    signs = torch.full_like(z, -1.0).index_put_((rows, rows + offset), torch.ones(b, dtype=z.dtype, device=z.device))
    return -F.logsigmoid(signs * z).sum() / n


class _SigLipFunction(torch.autograd.Function):
    """The SigLIP loss of the rows of ``a`` ``(b, D)`` against ``cols`` ``(N, D)``, positives at
    ``(i, offset + i)``: ``1/N Σ_i Σ_j softplus(−y_ij·Z_ij)``. The whole batch is ``b = N``,
    ``offset = 0``; one rank of the local-loss path passes its rows and the gathered columns.

    The gradients are computed with the loss, ``∂loss/∂Z = (σ(Z) − P) / N`` (``P`` the positives),
    and the backward only scales them. ``stream_columns`` streams ``Zᵀ`` (blocks of columns: memory
    independent of ``N``, for the local path) instead of ``Z``.
    ``apply(a, cols, scale, bias, offset, chunk, with_grads, stream_columns)``.
    """

    @staticmethod
    def forward(ctx, a, cols, scale, bias, offset, chunk, with_grads, stream_columns):
        with no_autocast(a):
            b, n = a.shape[0], cols.shape[0]
            sa = a * scale  # (b, D)
            if stream_columns:
                rows = rows_per_block(n, b, chunk, at_least=256)
                total, gt_a, g_cols, g_sum = siglip_blocked(cols, sa, bias, cols, a, rows, with_grads)
            else:
                rows = rows_per_block(b, n, chunk, at_least=256)
                total, g_cols, gt_a, g_sum = siglip_blocked(sa, cols, bias, a, cols, rows, with_grads)
            mine = cols[offset:offset + b]  # (b, D) the positives' columns
            diag = scale * (a * mine).sum() + b * bias  # Σ_i Z_{i,o+i}: softplus(−Z) = softplus(Z) − Z
            ctx.who = "siglip (local)" if stream_columns else "siglip"
            if with_grads:
                ua = g_cols.sub_(mine).div_(n)  # (∂loss/∂Z)·cols, (b, D)
                ub = gt_a  # (∂loss/∂Z)ᵀ·a, (N, D)
                ub[offset:offset + b] -= a
                ub.div_(n)
                ctx.others = (offset, chunk, with_grads, stream_columns)  # for a second-order backward
                ctx.save_for_backward(ua, ub, scale, (a * ua).sum(), (g_sum - b) / n, a, cols, bias)
            return (total - diag) / n

    @staticmethod
    def backward(ctx, grad):
        if not ctx.saved_tensors:
            raise GradientError(f"{ctx.who}: the loss was computed without gradients (torch.no_grad); recompute "
                                f"it with gradients enabled to backpropagate.")
        ua, ub, scale, d_scale, d_bias, a, cols, bias = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: differentiate the plain formulation
            inputs = (a, cols, scale, bias, *ctx.others)
            return graph_of_gradient(siglip_reference, inputs, ctx.needs_input_grad, grad)
        others = (None,) * len(ctx.others)
        return (ua * (grad * scale), ub * (grad * scale), grad * d_scale, grad * d_bias) + others


def siglip_loss(a: Tensor, b: Tensor, logit_scale: Tensor | float, logit_bias: Tensor | float, *,
                chunk_size: int | None = None) -> Tensor:
    """Pairwise sigmoid loss between two aligned views: ``−1/N Σ_ij log σ(y_ij (s·a_i·b_j + t))``.

    ``a``, ``b``: ``(N, D)``; ``y_ij = +1`` if ``i = j`` else ``−1``; ``logit_scale`` ``s`` and
    ``logit_bias`` ``t`` are scalars (gradients flow into both); ``chunk_size`` rows per block of
    logits (``None``: automatic). Returns a 0-d tensor, in float32 for 16-bit inputs (computed
    and accumulated in float32), else in their dtype. Second-order gradients are supported.
    Example: ``siglip_loss(z_image, z_text, model.logit_scale.exp(), model.logit_bias)``.
    """
    a, b, scale, bias = pair_inputs(a, b, logit_scale, chunk_size=chunk_size, who="siglip_loss",
                                    logit_bias=logit_bias)
    return siglip_apply(a, b, scale, bias, 0, chunk_size, stream_columns=False)


def siglip_apply(a: Tensor, cols: Tensor, scale: Tensor, bias: Tensor, offset: int, chunk: int | None, *,
                 stream_columns: bool) -> Tensor:
    """:class:`_SigLipFunction` on checked inputs; gradients are computed when any input requires them."""
    with_grads = torch.is_grad_enabled() and any(t.requires_grad for t in (a, cols, scale, bias))
    return _SigLipFunction.apply(a, cols, scale, bias, offset, chunk, with_grads, stream_columns)


@register_objective("siglip", citation="Zhai et al. 2023, Sigmoid Loss for Language Image Pre-Training "
                                       "(arXiv:2303.15343)")
class SigLipLoss(nn.Module):
    """Pairwise sigmoid loss (SigLIP) between exactly two aligned views.

    Paper: Zhai, Mustafa, Kolesnikov, Beyer 2023, "Sigmoid Loss for Language Image Pre-Training"
    (SigLIP, ICCV 2023). Equation, with ``s = 1/τ``, bias ``t``
    and ``y_ij = +1`` for the positive pair ``i = j``, ``−1`` otherwise::

        loss = −1/N Σ_i Σ_j log σ( y_ij · (s · a_i·b_j + t) )

    (paper initialisation: ``s = 10``, ``t = −10``). Equal to open_clip's ``SigLipLoss`` on one
    process, values and gradients (including those of ``logit_scale`` and ``logit_bias``).
    Shapes: embeddings ``{view_1: (B, D), view_2: (B, D)}``; returns a 0-d tensor.
    ``logit_bias`` is required; ``mask`` ``{view: (B,) bool}`` drops the rows where either view is
    absent; ``labels`` are ignored. The logits are never held whole: they are streamed in blocks of
    ``chunk_size`` rows (``None``: ~16 MiB blocks, at least 256 rows), peak memory O(B·chunk_size).

    Example:
        >>> loss = SigLipLoss()({"image": zi, "text": zt}, logit_scale=torch.tensor(10.0),
        ...                     logit_bias=torch.tensor(-10.0))
    """

    needs_logit_bias = True  # the trainer checks the model has one before training starts

    def __init__(self, chunk_size: int | None = None):
        super().__init__()
        self.chunk_size = check_chunk_size(chunk_size)

    @full_precision
    def forward(self, embeddings: Mapping[str, Tensor], *, logit_scale, logit_bias=None, labels=None,
                mask=None) -> Tensor:
        require_bias(logit_bias, "siglip")
        a, b = present_views(embeddings, mask, "siglip")
        if a.shape[0] == 0:
            return nothing_to_contrast(a, b)
        return siglip_loss(a, b, logit_scale, logit_bias, chunk_size=self.chunk_size)

    def extra_repr(self) -> str:
        return f"chunk_size={self.chunk_size}"

    def forward_local(self, local: Mapping[str, Tensor], gathered: Mapping[str, Tensor], rank_offset: int, *,
                      logit_scale, logit_bias=None, labels=None, mask=None) -> Tensor:
        """This rank's part of the loss under torchrun: its rows ``rank_offset…`` (``local``, ``(b, D)``)
        against the ``gathered`` ``(N, D)`` columns, ``mask`` gathered; see :mod:`._per_rank`."""
        from zoo.objectives._per_rank import siglip_local
        return siglip_local(local, gathered, rank_offset, logit_scale, logit_bias, mask=mask,
                            chunk_size=self.chunk_size)
