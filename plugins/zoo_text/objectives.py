"""``simcse_sup``: InfoNCE of each anchor against all positives and all hard negatives of the batch.

Paper: Gao, Yao, Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings" (EMNLP
2021, arXiv:2104.08821), eq. 5, with ``s = logit_scale = 1/τ`` (paper τ = 0.05, ``s = 20``)::

    loss = −(1/N) Σ_i log  e^{s·h_i·h_i⁺} / Σ_j ( e^{s·h_i·h_j⁺} + e^{s·h_i·h_j⁻} )

Without negatives it is the one-directional in-batch InfoNCE of unsupervised SimCSE (eq. 1).
It equals sentence-transformers' ``MultipleNegativesRankingLoss(scale=s)`` on (anchor, positive,
negative) columns; ``symmetric=True`` adds the positive → anchor direction (MNRL with
``directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction"``).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import check_option
from zoo.errors import ShapeError
from zoo.objectives.base import as_scalar, check_embeddings, full_precision


class SimCSESupervisedLoss(nn.Module):
    """Supervised SimCSE (eq. 5): anchor vs [positives; hard negatives], cross-entropy on the diagonal.

    Views: ``anchor`` and ``positive`` (the names of the ``supervised_simcse`` strategy; with other
    names the first two views are anchor and positive), every further view is a hard-negative
    view (any number, e.g. ``negative``). Shapes: each ``(B, D)`` L2-normalised; returns ``()``.

    Options: ``symmetric`` (also positive → anchor, averaged; default off as in the paper),
    ``hard_negative_weight`` (added to the scaled logit of each anchor's own hard negative, the
    SimCSE code's ``hard_negative_weight``; paper default 0). ``mask`` ``{view: (B,) bool}``: rows
    without anchor or positive are dropped, absent hard negatives are left out of the softmax.
    ``labels`` and ``logit_bias`` are ignored.

    Example:
        >>> SimCSESupervisedLoss()({"anchor": za, "positive": zp, "negative": zn}, logit_scale=20.0)
    """

    def __init__(self, symmetric: bool = False, hard_negative_weight: float = 0.0):
        super().__init__()
        check_option("hard_negative_weight", hard_negative_weight, who="simcse_sup", hint="the paper uses 0")
        self.symmetric, self.hard_negative_weight = bool(symmetric), float(hard_negative_weight)

    @full_precision  # bf16/fp16 embeddings are computed in float32, outside autocast
    def forward(self, embeddings: Mapping[str, Tensor], *, logit_scale, logit_bias=None, labels=None,
                mask=None) -> Tensor:
        check_embeddings(embeddings, min_views=2, who="simcse_sup")
        roles = _role_names(embeddings)
        a, p = embeddings[roles[0]], embeddings[roles[1]]  # (B, D) each
        keep, neg_keep = _present(mask, roles, a.shape[0], a.device)
        a, p, negs = a[keep], p[keep], [embeddings[n][keep] for n in roles[2]]
        b = a.shape[0]
        if b == 0:
            return sum(t.sum() for t in embeddings.values()) * 0.0
        s = as_scalar(logit_scale, a)
        logits = s * a @ torch.cat([p, *negs]).T  # (B, B·(1 + K))
        eye = torch.eye(b, dtype=torch.bool, device=a.device)
        for k, present in enumerate(neg_keep):
            cols = slice(b * (k + 1), b * (k + 2))
            logits[:, cols] = logits[:, cols] + self.hard_negative_weight * eye
            if present is not None:
                logits[:, cols] = logits[:, cols].masked_fill(~present[keep][None, :], float("-inf"))
        target = torch.arange(b, device=a.device)
        loss = F.cross_entropy(logits, target)
        if self.symmetric:
            loss = (loss + F.cross_entropy(s * p @ a.T, target)) / 2  # (B, B) positive → anchors
        return loss

    def extra_repr(self) -> str:
        return f"symmetric={self.symmetric}, hard_negative_weight={self.hard_negative_weight}"


def _role_names(embeddings: Mapping[str, Tensor]) -> tuple[str, str, list[str]]:
    """``(anchor, positive, [negatives…])`` view names: by name, else by position."""
    names = list(embeddings)
    if "anchor" in embeddings and "positive" in embeddings:
        a, p = "anchor", "positive"
    elif "anchor" in embeddings or "positive" in embeddings:
        raise ShapeError(f"simcse_sup: expected both views 'anchor' and 'positive' (or neither, then the first two "
                         f"views play them), got {names}.")
    else:
        a, p = names[:2]
    return a, p, [n for n in names if n not in (a, p)]


def _present(mask, roles: tuple[str, str, list[str]], b: int, device) -> tuple[Tensor, list[Tensor | None]]:
    """Rows with anchor and positive present ``(B,)``, and each negative view's presence (or None)."""
    mask = mask or {}
    a, p, negs = roles
    for name in (a, p, *negs):
        if name in mask and mask[name].shape != (b,):
            raise ShapeError(f"simcse_sup: mask[{name!r}] expected shape ({b},), got {tuple(mask[name].shape)}.")
    keep = torch.ones(b, dtype=torch.bool, device=device)
    for name in (a, p):
        if name in mask:
            keep &= mask[name].to(device=device, dtype=torch.bool)
    return keep, [mask[n].to(device=device, dtype=torch.bool) if n in mask else None for n in negs]
