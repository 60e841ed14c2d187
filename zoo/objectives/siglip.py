"""SigLIP: the pairwise sigmoid loss (Zhai et al. 2023), with a hand-written backward.

Every pair ``(i, j)`` is an independent binary problem, so ``∂loss/∂Z_ij = (σ(Z_ij) − [i = j]) / N``
with ``Z = s·a·bᵀ + t``. One pass over row blocks of ``Z`` (see :mod:`._chunked`) computes the
loss *and* the gradient products ``σ(Z)·b``, ``σ(Z)ᵀ·a`` while each block is in cache: three
``N×N×D`` matrix products in all, no ``(N, N)`` matrix allocated (memory O(N·block)), where
autograd allocates several ``(N, N)`` temporaries. The backward only scales the stored gradients.
The gradient is therefore computed with the loss whenever gradients are enabled and an input
requires them (under ``torch.no_grad()`` only the loss is computed).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ..errors import ShapeError
from ._chunked import siglip_blocked, siglip_rows_per_block
from .base import as_scalar, check_embeddings, register_objective
from .clip import check_chunk_size, present_pair


class _SigLipFunction(torch.autograd.Function):
    """Pairwise sigmoid loss; the gradients are computed with the loss, the backward scales them."""

    @staticmethod
    def forward(ctx, a, b, scale, bias, chunk, with_grads):
        n = a.shape[0]
        total, gb, gta, g_sum = siglip_blocked(a * scale, a, b, bias, siglip_rows_per_block(n, chunk), with_grads)
        diag = scale * (a * b).sum() + n * bias  # Σ_i Z_ii: the positives' softplus(−Z) = softplus(Z) − Z
        if with_grads:  # ∂loss/∂Z = (σ(Z) − I) / N
            ua = gb.sub_(b).div_(n)  # (∂loss/∂Z)·b, (N, D)
            ub = gta.sub_(a).div_(n)  # (∂loss/∂Z)ᵀ·a
            ctx.save_for_backward(ua, ub, scale, (a * ua).sum(), (g_sum - n) / n)
        return (total - diag) / n

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        return scale_saved_gradients(ctx, grad, "siglip", n_inputs=6)


def scale_saved_gradients(ctx, grad: Tensor, who: str, n_inputs: int) -> tuple:
    """The backward of the SigLIP functions: the gradients saved by the forward ``(ua, ub, scale,
    ∂loss/∂scale, ∂loss/∂bias)``, scaled by the incoming ``grad``; ``None`` for the other inputs."""
    if not ctx.saved_tensors:
        raise RuntimeError(f"{who}: the loss was computed without gradients (torch.no_grad); recompute it "
                           f"with gradients enabled to backpropagate.")
    ua, ub, scale, d_scale, d_bias = ctx.saved_tensors
    return (ua * (grad * scale), ub * (grad * scale), grad * d_scale, grad * d_bias) + (None,) * (n_inputs - 4)


def siglip_loss(a: Tensor, b: Tensor, logit_scale: Tensor | float, logit_bias: Tensor | float, *,
                chunk_size: int | None = None) -> Tensor:
    """Pairwise sigmoid loss between two aligned views: ``−1/N Σ_ij log σ(y_ij (s·a_i·b_j + t))``.

    ``a``, ``b``: ``(N, D)``; ``y_ij = +1`` if ``i = j`` else ``−1``; ``logit_scale`` ``s`` and
    ``logit_bias`` ``t`` are scalars (gradients flow into both); ``chunk_size`` rows per block of
    logits (``None``: automatic). Returns a 0-d tensor.
    Example: ``siglip_loss(z_image, z_text, model.logit_scale.exp(), model.logit_bias)``.
    """
    if logit_bias is None:
        raise ValueError("siglip needs a logit_bias (the paper initialises it to -10): pass logit_bias=… "
                         "(e.g. model.logit_bias, a learnable scalar), or use the 'clip' objective.")
    check_chunk_size(chunk_size)
    a, b = check_embeddings({"a": a, "b": b}, min_views=2, max_views=2, who="siglip_loss")
    if a.shape[0] == 0:
        raise ShapeError("siglip_loss: expected at least one row (B ≥ 1), got an empty batch (0, D).")
    dtype = torch.promote_types(a.dtype, b.dtype)
    a, b = a.to(dtype), b.to(dtype)
    scale, bias = as_scalar(logit_scale, a), as_scalar(logit_bias, a)
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

    def forward(self, embeddings: Mapping[str, Tensor], *, logit_scale, logit_bias=None, labels=None,
                mask=None) -> Tensor:
        check_embeddings(embeddings, min_views=2, max_views=2, who="siglip")
        if logit_bias is None:
            raise ValueError("siglip needs a logit_bias (the paper initialises it to -10): build the model "
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
        against the ``gathered`` ``(N, D)`` columns, ``mask`` gathered; see :mod:`._local`."""
        from ._local import siglip_local
        return siglip_local(local, gathered, rank_offset, logit_scale, logit_bias, mask=mask,
                            chunk_size=self.chunk_size)
