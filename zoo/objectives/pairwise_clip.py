"""Pairwise CLIP over M ≥ 2 modalities: the CLIP loss of every pair of views, summed or averaged.

The baseline Symile is compared against (Saporta et al. 2024); :mod:`.anchored_clip` reuses
:func:`pair_terms` and :func:`reduce_terms` from here.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from zoo.errors import OptionError
from zoo.objectives._pair_inputs import check_chunk_size, present_pair
from zoo.objectives.base import check_embeddings, full_precision, register_objective
from zoo.objectives.clip import clip_loss

REDUCTIONS = ("sum", "mean")


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise OptionError("reduction",
                          f"reduction must be 'sum' (as the Symile paper's CLIP baseline) or 'mean' over the "
                          f"pairs, got {reduction!r}.")
    return reduction


def pair_terms(embeddings: Mapping[str, Tensor], pairs: Iterable[tuple[str, str]], logit_scale, mask,
               chunk_size: int | None, who: str) -> list[Tensor]:
    """``clip_loss`` of each pair on the rows where both views are present (pairs with none: skipped)."""
    terms = []
    for u, v in pairs:
        a, b = present_pair(embeddings, mask, [u, v], who)
        if a.shape[0]:
            terms.append(clip_loss(a, b, logit_scale, chunk_size=chunk_size))
    return terms


def reduce_terms(terms: list[Tensor], reduction: str, embeddings: Mapping[str, Tensor], logit_scale) -> Tensor:
    """Sum or mean of the pair terms; a zero (with a graph) when no pair had a row."""
    if not terms:
        zero = sum(x.sum() for x in embeddings.values()) * 0.0
        return zero + logit_scale * 0.0 if isinstance(logit_scale, Tensor) else zero
    total = torch.stack(terms).sum()
    return total / len(terms) if reduction == "mean" else total


@register_objective("pairwise_clip", citation="Saporta et al. 2024, Contrasting with Symile (NeurIPS 2024, "
                                              "arXiv:2411.01053): the pairwise-CLIP baseline; CLIP: Radford et "
                                              "al. 2021 (arXiv:2103.00020)")
class PairwiseClipLoss(nn.Module):
    """CLIP between every pair of M ≥ 2 views, summed (``reduction="sum"``) or averaged.

    Paper: the multi-modality CLIP baseline of Saporta, Puli, Goldstein, Ranganath 2024, "Contrasting
    with Symile: Simple Model-Agnostic Representation Learning for Unlimited Modalities" (NeurIPS
    2024), with CLIP of Radford et al. 2021, "Learning Transferable Visual Models From Natural
    Language Supervision". The Symile code sums the
    symmetric InfoNCE of the three pairs — hence the default ``"sum"``; ``"mean"`` divides by the
    number of pairs. With ``clip(u, v)`` the mean of both softmax directions (the zoo's ``clip``,
    equal to open_clip's ``ClipLoss``)::

        loss = Σ_{u < v} clip(x_u, x_v)        (reduction="sum")
        loss = 2 / (M(M−1)) · Σ_{u < v} clip(x_u, x_v)   (reduction="mean")

    Shapes: embeddings ``{view: (B, D)}``; returns a 0-d tensor. ``mask={view: (B,) bool}``: each
    pair's term uses only the rows where both of its views are present; a pair with no such row
    is left out (and not counted by ``"mean"``). ``chunk_size`` is passed to ``clip_loss``.
    ``labels``/``logit_bias`` are ignored.

    Example:
        >>> loss = PairwiseClipLoss()({"image": zi, "text": zt, "audio": za}, logit_scale=torch.tensor(14.3))
    """

    def __init__(self, reduction: str = "sum", chunk_size: int | None = None):
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.chunk_size = check_chunk_size(chunk_size)

    @full_precision
    def forward(self, embeddings: Mapping[str, Tensor], *, logit_scale, logit_bias=None, labels=None,
                mask=None) -> Tensor:
        check_embeddings(embeddings, min_views=2, who="pairwise_clip")
        names = list(embeddings)
        pairs = [(u, v) for i, u in enumerate(names) for v in names[i + 1:]]
        terms = pair_terms(embeddings, pairs, logit_scale, mask, self.chunk_size, "pairwise_clip")
        return reduce_terms(terms, self.reduction, embeddings, logit_scale)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, chunk_size={self.chunk_size}"
