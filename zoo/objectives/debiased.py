"""Debiased contrastive loss (Chuang et al. 2020): correct for false negatives with a class prior τ⁺."""
from __future__ import annotations

from torch import Tensor, nn

from zoo.errors import OptionError
from zoo.objectives._two_view import debiased_loss
from zoo.objectives.base import full_precision, register_objective


def check_tau_plus(tau_plus: float, who: str) -> float:
    if not 0 <= tau_plus < 1:
        raise OptionError("tau_plus",
                          f"{who}: tau_plus (τ⁺, the probability that a sampled negative shares the anchor's "
                          f"class) must satisfy 0 ≤ τ⁺ < 1, got {tau_plus}; the paper uses 0.1.")
    return float(tau_plus)


@register_objective("debiased", citation="Chuang et al. 2020, Debiased Contrastive Learning (NeurIPS 2020, arXiv:2007.00224)")
class DebiasedContrastiveLoss(nn.Module):
    """Debiased contrastive loss: subtract the expected false negatives from the denominator.

    Paper: Chuang, Robinson, Lin, Torralba, Jegelka, "Debiased Contrastive Learning", NeurIPS 2020.

    Equation (eq. 6 with M = 1 positive; s = logit_scale = 1/t, N = 2B − 2 negatives per
    anchor taken from both views, as in the paper's SimCLR setting)::

        L = E_x[ −log( e^{s·pos} / (e^{s·pos} + N·g) ) ]
        g = max( (1/(1−τ⁺)) · ( (1/N) Σ_j e^{s·neg_j} − τ⁺ · e^{s·pos} ),  e^{−s} )

    The clamp ``N·g ≥ N·e^{−1/t}`` keeps the estimate at its theoretical minimum. ``τ⁺ = 0``
    gives the usual (biased) NT-Xent loss. Paper default τ⁺ = 0.1 (CIFAR-10), t = 0.5.

    Shapes: embeddings ``{view1: (B, D), view2: (B, D)}`` L2-normalised, B ≥ 2; returns ``()``,
    the mean over the 2B anchors. Computed in log space, so large ``logit_scale`` is stable.

    Example:
        >>> loss = DebiasedContrastiveLoss(tau_plus=0.1)({"x.1": z1, "x.2": z2}, logit_scale=2.0)
    """

    def __init__(self, tau_plus: float = 0.1):
        super().__init__()
        self.tau_plus = check_tau_plus(tau_plus, "debiased")

    @full_precision
    def forward(self, embeddings, *, logit_scale, logit_bias=None, labels=None, mask=None) -> Tensor:
        return debiased_loss(embeddings, logit_scale, self.tau_plus, 0.0, "debiased")
