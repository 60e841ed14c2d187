"""Supervised contrastive loss (SupCon): every sample with the same label is a positive."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from zoo.errors import OptionError, RecipeError, ShapeError
from zoo.objectives.base import as_scalar, check_embeddings, full_precision, register_objective, require_labels


def choose_label(labels: Mapping[str, Tensor] | None, label: str | None, who: str) -> str:
    """The label level to use: ``label`` if given, else the only level in ``labels``."""
    if label is not None:
        return label
    if not labels:
        raise ShapeError(f"{who}: needs labels {{level: (B,) ids}} to define the positives, got none. Use a "
                         f"dataset with labels and a pair strategy that passes them (e.g. 'two_views').")
    if len(labels) > 1:
        raise RecipeError(f"{who}: labels has several levels ({', '.join(labels)}); say which one defines the "
                          f"positives with the option label=<one of them>.")
    return next(iter(labels))


@register_objective("supcon", citation="Khosla et al. 2020, Supervised Contrastive Learning (NeurIPS 2020, arXiv:2004.11362)")
class SupConLoss(nn.Module):
    """Supervised contrastive loss over any number of views, positives = same label.

    Paper: Khosla, Teterwak, Wang, Sarna, Tian, Isola, Maschinot, Liu, Krishnan, "Supervised
    Contrastive Learning", NeurIPS 2020.

    Equation (L^sup_out, eq. 2; s = logit_scale = 1/τ). All views are stacked into one set
    I of V·B embeddings (view-major: all of the first view, then the second, …) with
    labels repeated; A(i) = I \\ {i}; P(i) = {p ∈ A(i) : y_p = y_i}::

        L = (1/|I⁺|) Σ_{i∈I⁺} −(1/|P(i)|) Σ_{p∈P(i)} log( exp(s·z_i·z_p) / Σ_{a∈A(i)} exp(s·z_i·z_a) )

    where I⁺ = {i : |P(i)| > 0}: anchors without any positive are left out of the mean (as
    ``pytorch_metric_learning.losses.SupConLoss`` does; the paper's equation is undefined
    for them). If no anchor has a positive, the loss is 0 (still connected to the graph).
    One documented difference from pytorch_metric_learning: when the batch has positives but
    no negatives at all (every label equal), PML returns 0, while this follows the equation
    (the value is > 0 and its gradient pulls the positives together). Paper default τ = 0.1
    (``logit_scale=10``); with a single view and ``labels = row ids`` over two views it is
    SimCLR's NT-Xent.

    Options: ``label`` — which ``labels`` level defines positives; default: the only level
    given (ValueError if there are several, ShapeError if none).

    Shapes: embeddings ``{view: (B, D)}`` (one or more views) L2-normalised; ``labels[label]``
    ``(B,)`` int; returns ``()``.

    Example:
        >>> loss = SupConLoss()({"image": z}, logit_scale=10.0, labels={"class": y})
    """

    supports_label_positives = True

    def __init__(self, label: str | None = None):
        super().__init__()
        if label is not None and not (isinstance(label, str) and label):
            raise OptionError("label",
                              f"supcon: label must be the name of a labels level (e.g. 'class'), got {label!r}.")
        self.label = label

    @full_precision
    def forward(self, embeddings, *, logit_scale, logit_bias=None, labels=None, mask=None) -> Tensor:
        views = check_embeddings(embeddings, min_views=1, who="supcon")
        batch = views[0].shape[0]
        y = require_labels(labels, choose_label(labels, self.label, "supcon"), batch, "supcon")
        z = torch.cat(views)                                         # (V·B, D)
        y = y.to(z.device).repeat(len(views))                        # (V·B,)
        s = as_scalar(logit_scale, z)
        n = z.shape[0]
        self_mask = torch.eye(n, dtype=torch.bool, device=z.device)  # (V·B, V·B)
        logits = (z @ z.T * s).masked_fill(self_mask, float("-inf"))  # (V·B, V·B)
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        pos = (y[:, None] == y[None, :]) & ~self_mask                # (V·B, V·B)
        n_pos = pos.sum(dim=1)                                       # (V·B,)
        has_pos = n_pos > 0
        if not has_pos.any():
            return (z.sum() + s) * 0.0
        per_anchor = torch.where(pos, log_prob, 0.0).sum(dim=1) / n_pos.clamp(min=1)   # (V·B,)
        return -per_anchor[has_pos].mean()
