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

from zoo.errors import GradientError, RecipeError
from zoo.objectives._autograd import graph_of_gradient, no_autocast
from zoo.objectives._blocked import siglip_blocked, siglip_rows_per_block
from zoo.objectives.base import as_scalar, check_embeddings, full_precision, register_objective
from zoo.objectives.clip import check_chunk_size, present_pair, two_views


def siglip_reference(a: Tensor, cols: Tensor, scale: Tensor, bias: Tensor, offset: int = 0, *_) -> Tensor:
    """Plain-autograd SigLIP of the rows of ``a`` (positives at ``cols[offset + i]``): the graph for
    second-order gradients. ``−1/N Σ_ij log σ(y_ij·Z_ij)``, ``N`` = the number of columns."""
    n, b = cols.shape[0], a.shape[0]
    z = scale * a @ cols.T + bias  # (b, N)
    rows = torch.arange(b, device=a.device)
    signs = torch.full_like(z, -1.0).index_put_((rows, rows + offset), torch.ones(b, dtype=z.dtype, device=z.device))
    return -F.logsigmoid(signs * z).sum() / n


def save_siglip_gradients(ctx, a: Tensor, cols: Tensor, g_cols: Tensor, gt_a: Tensor, g_sum: Tensor,
                          scale: Tensor, offset: int, inputs: tuple) -> None:
    """Turn the sigmoid products into the gradients and save them for the backward.

    ``g_cols = σ(Z)·cols`` ``(b, D)``, ``gt_a = σ(Z)ᵀ·a`` ``(N, D)``, ``g_sum = Σσ(Z)`` for the rows of
    ``a`` against all ``N`` columns; ``∂loss/∂Z = (σ(Z) − P) / N``, ``P`` the positives ``(i, o+i)``.
    ``inputs``: the Function's arguments, kept for a second-order backward.
    """
    b, n = a.shape[0], cols.shape[0]
    ua = g_cols.sub_(cols[offset:offset + b]).div_(n)  # (∂loss/∂Z)·cols, (b, D)
    ub = gt_a  # (∂loss/∂Z)ᵀ·a, (N, D)
    ub[offset:offset + b] -= a
    ub.div_(n)
    ctx.inputs_at = [i for i, x in enumerate(inputs) if isinstance(x, Tensor)]
    ctx.others = [None if isinstance(x, Tensor) else x for x in inputs]
    ctx.save_for_backward(ua, ub, scale, (a * ua).sum(), (g_sum - b) / n,
                          *(x for x in inputs if isinstance(x, Tensor)))


def scale_saved_gradients(ctx, grad: Tensor, who: str) -> tuple:
    """The backward of the SigLIP functions: the gradients saved by :func:`save_siglip_gradients`
    scaled by the incoming ``grad`` (``None`` for the non-tensor inputs), or, when a graph of the
    gradient is requested, those of :func:`siglip_reference`."""
    if not ctx.saved_tensors:
        raise GradientError(f"{who}: the loss was computed without gradients (torch.no_grad); recompute it "
                            f"with gradients enabled to backpropagate.")
    ua, ub, scale, d_scale, d_bias, *tensors = ctx.saved_tensors
    if torch.is_grad_enabled():  # create_graph=True
        inputs = list(ctx.others)
        for i, t in zip(ctx.inputs_at, tensors):
            inputs[i] = t
        return graph_of_gradient(siglip_reference, inputs, ctx.needs_input_grad, grad)
    others = (None,) * (len(ctx.others) - 4)
    return (ua * (grad * scale), ub * (grad * scale), grad * d_scale, grad * d_bias) + others


class _SigLipFunction(torch.autograd.Function):
    """Pairwise sigmoid loss; the gradients are computed with the loss, the backward scales them."""

    @staticmethod
    def forward(ctx, a, b, scale, bias, chunk, with_grads):
        with no_autocast(a):
            n = a.shape[0]
            total, gb, gta, g_sum = siglip_blocked(a * scale, a, b, bias, siglip_rows_per_block(n, chunk), with_grads)
            diag = scale * (a * b).sum() + n * bias  # Σ_i Z_ii: the positives' softplus(−Z) = softplus(Z) − Z
            if with_grads:
                save_siglip_gradients(ctx, a, b, gb, gta, g_sum, scale, 0, (a, b, scale, bias, 0, chunk))
            return (total - diag) / n

    @staticmethod
    def backward(ctx, grad):
        return scale_saved_gradients(ctx, grad, "siglip")


def siglip_loss(a: Tensor, b: Tensor, logit_scale: Tensor | float, logit_bias: Tensor | float, *,
                chunk_size: int | None = None) -> Tensor:
    """Pairwise sigmoid loss between two aligned views: ``−1/N Σ_ij log σ(y_ij (s·a_i·b_j + t))``.

    ``a``, ``b``: ``(N, D)``; ``y_ij = +1`` if ``i = j`` else ``−1``; ``logit_scale`` ``s`` and
    ``logit_bias`` ``t`` are scalars (gradients flow into both); ``chunk_size`` rows per block of
    logits (``None``: automatic). Returns a 0-d tensor, in float32 for 16-bit inputs (computed
    and accumulated in float32), else in their dtype. Second-order gradients are supported.
    Example: ``siglip_loss(z_image, z_text, model.logit_scale.exp(), model.logit_bias)``.
    """
    if logit_bias is None:
        raise RecipeError("siglip needs a logit_bias (the paper initialises it to -10): pass logit_bias=… "
                          "(e.g. model.logit_bias, a learnable scalar), or use the 'clip' objective.")
    check_chunk_size(chunk_size)
    a, b, scale = two_views(a, b, logit_scale, "siglip_loss")
    bias = as_scalar(logit_bias, a)
    with_grads = torch.is_grad_enabled() and any(t.requires_grad for t in (a, b, scale, bias))
    return _SigLipFunction.apply(a, b, scale, bias, chunk_size, with_grads)


@register_objective("siglip", citation="Zhai et al. 2023, Sigmoid Loss for Language Image Pre-Training "
                                       "(arXiv:2303.15343)")
class SigLipLoss(nn.Module):
    """Pairwise sigmoid loss (SigLIP) between exactly two aligned views.

    Paper: Zhai, Mustafa, Kolesnikov, Beyer 2023 (SigLIP). Equation, with ``s = 1/τ``, bias ``t``
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
        check_embeddings(embeddings, min_views=2, max_views=2, who="siglip")
        if logit_bias is None:
            raise RecipeError("siglip needs a logit_bias (the paper initialises it to -10): build the model "
                              "with a logit_bias (ContrastiveModel.logit_bias) and pass it, or use 'clip'.")
        a, b = present_pair(embeddings, mask, list(embeddings))
        if a.shape[0] == 0:  # no row has both views
            return (a.sum() + b.sum()) * 0.0
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
