"""Decoupled contrastive learning (DCL, and DCLW with von Mises–Fisher weighting)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.errors import OptionError
from zoo.objectives._two_view import masked_logsumexp, two_view_inputs, two_view_scores
from zoo.objectives.base import full_precision, register_objective


@register_objective("dcl", citation="Yeh et al. 2022, Decoupled Contrastive Learning (ECCV 2022, arXiv:2110.06848)")
class DCLLoss(nn.Module):
    """Decoupled contrastive loss: InfoNCE with the positive removed from the denominator.

    Paper: Yeh, Hong, Hsu, Liu, Chen, LeCun, "Decoupled Contrastive Learning", ECCV 2022.

    Equation (eq. 6, two views, s = logit_scale = 1/τ), for every anchor z_i^(k), k ∈ {1, 2}::

        L_i^(k) = −w_i · s⟨z_i^(1), z_i^(2)⟩ + log Σ_{l∈{1,2}, j≠i} exp(s⟨z_i^(k), z_j^(l)⟩)

    and the loss is the mean over the 2B anchors. DCL: ``w_i = 1``. DCLW (``weight_sigma=σ``)::

        w_i = 2 − exp(⟨z_i^(1), z_i^(2)⟩/σ) / E_j[exp(⟨z_j^(1), z_j^(2)⟩/σ)]

    computed without gradient (as the reference implementations do). Paper defaults: τ = 0.1
    (pass ``logit_scale=10``), σ = 0.5 for DCLW.

    Shapes: embeddings ``{view1: (B, D), view2: (B, D)}`` L2-normalised, B ≥ 2; returns ``()``.
    ``lightly.loss.DCLLoss(temperature=τ)`` / ``DCLWLoss(temperature=τ, sigma=σ)`` equal this
    with ``logit_scale = 1/τ``.

    Example:
        >>> loss = DCLLoss(weight_sigma=0.5)({"x.1": z1, "x.2": z2}, logit_scale=torch.tensor(10.0))
    """

    def __init__(self, weight_sigma: float | None = None):
        super().__init__()
        if weight_sigma is not None and not weight_sigma > 0:
            raise OptionError("weight_sigma",
                              f"dcl: weight_sigma must be > 0 (the paper uses 0.5) or None for unweighted DCL, "
                              f"got {weight_sigma}.")
        self.weight_sigma = weight_sigma

    @full_precision
    def forward(self, embeddings, *, logit_scale, logit_bias=None, labels=None, mask=None) -> Tensor:
        a, b, scale = two_view_inputs(embeddings, logit_scale, "dcl")
        pos, logits, not_negative = two_view_scores(a, b, scale)                        # (2B,), (2B, 2B)
        weight = self.positive_weight(a, b).repeat(2)                                  # (2B,)
        return (-weight * pos + masked_logsumexp(logits, not_negative)).mean()

    def positive_weight(self, a: Tensor, b: Tensor) -> Tensor:
        """``w_i`` of the equation, ``(B,)``; all ones for unweighted DCL."""
        if self.weight_sigma is None:
            return torch.ones(a.shape[0], dtype=a.dtype, device=a.device)
        sim = (a.detach() * b.detach()).sum(-1) / self.weight_sigma   # (B,)
        return 2 - a.shape[0] * torch.softmax(sim, dim=0)
