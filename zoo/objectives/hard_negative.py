"""Hard-negative reweighted contrastive loss (Robinson et al. 2021)."""
from __future__ import annotations

from torch import Tensor, nn

from zoo.errors import OptionError
from zoo.objectives._two_view import debiased_loss
from zoo.objectives.base import full_precision, register_objective
from zoo.objectives.debiased import check_tau_plus


@register_objective("hard_negative",
                    citation="Robinson et al. 2021, Contrastive Learning with Hard Negative Samples (ICLR 2021, arXiv:2010.04592)")
class HardNegativeLoss(nn.Module):
    """Contrastive loss whose negatives are importance-weighted towards the hard ones.

    Paper: Robinson, Chuang, Sra, Jegelka, "Contrastive Learning with Hard Negative Samples",
    ICLR 2021.

    Equation (s = logit_scale = 1/t, N = 2B − 2 negatives per anchor from both views)::

        L = E_x[ −log( e^{s·pos} / (e^{s·pos} + N·g) ) ]
        g = max( (1/(1−τ⁺)) · ( Σ_j w_j e^{s·neg_j} − τ⁺ · e^{s·pos} ),  e^{−s} )
        w_j = e^{β·s·neg_j} / Σ_k e^{β·s·neg_k}        (the hardness distribution q_β)

    As in the paper's code the weights are part of the graph (gradients flow through them).
    ``β = 0`` gives the debiased loss; ``β = 0, τ⁺ = 0`` gives NT-Xent. Paper defaults (CIFAR-10
    and the authors' code): β = 1.0, τ⁺ = 0.1 (set ``tau_plus=0`` to turn debiasing off).

    Shapes: embeddings ``{view1: (B, D), view2: (B, D)}`` L2-normalised, B ≥ 2; returns ``()``.

    Example:
        >>> loss = HardNegativeLoss(beta=1.0)({"x.1": z1, "x.2": z2}, logit_scale=2.0)
    """

    def __init__(self, beta: float = 1.0, tau_plus: float = 0.1):
        super().__init__()
        if not beta >= 0:
            raise OptionError("beta",
                              f"hard_negative: beta (β, the concentration on hard negatives) must be ≥ 0, got "
                              f"{beta}; the paper uses 1.0 (0 turns the reweighting off).")
        self.beta = float(beta)
        self.tau_plus = check_tau_plus(tau_plus, "hard_negative")

    @full_precision
    def forward(self, embeddings, *, logit_scale, logit_bias=None, labels=None, mask=None) -> Tensor:
        return debiased_loss(embeddings, logit_scale, self.tau_plus, self.beta, "hard_negative")
