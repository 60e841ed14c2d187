"""Anchored CLIP (ImageBind): every view contrasted with one anchor view only."""
from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from zoo.errors import OptionError, UnknownNameError
from zoo.objectives._pair_inputs import check_chunk_size
from zoo.objectives.base import check_embeddings, full_precision, register_objective
from zoo.objectives.pairwise_clip import check_reduction, pair_terms, reduce_terms


@register_objective("anchored_clip", citation="Girdhar et al. 2023, ImageBind: One Embedding Space To Bind "
                                              "Them All, CVPR 2023 (arXiv:2305.05665)")
class AnchoredClipLoss(nn.Module):
    """CLIP between one anchor view and each other view (ImageBind), summed or averaged.

    Paper: Girdhar, El-Nouby, Liu, Singh, Alwala, Joulin, Misra 2023, "ImageBind: One Embedding
    Space To Bind Them All" (CVPR 2023), binds every modality to images only: with anchor view
    ``a`` and ``clip(u, v)`` the mean of both softmax directions (the zoo's ``clip``; ImageBind's
    symmetric ``L_{a,m} + L_{m,a}`` is twice this)::

        loss = Σ_{m ≠ a} clip(x_a, x_m)                (reduction="sum")
        loss = 1/(M−1) · Σ_{m ≠ a} clip(x_a, x_m)      (reduction="mean")

    Pairs of non-anchor views are never contrasted (they align only through the anchor).
    ``anchor``: a view name, default ``None`` = the first view of the embeddings mapping; a name
    that is not a view raises ``UnknownNameError`` listing the views.
    Shapes: embeddings ``{view: (B, D)}``, M ≥ 2; returns a 0-d tensor. ``mask={view: (B,) bool}``:
    each term uses the rows where the anchor and that view are both present (a term with no such
    row is left out, and not counted by ``"mean"``). ``labels``/``logit_bias`` are ignored.

    Example:
        >>> loss = AnchoredClipLoss(anchor="image")({"image": zi, "text": zt, "audio": za},
        ...                                         logit_scale=torch.tensor(14.3))
    """

    def __init__(self, anchor: str | None = None, reduction: str = "sum", chunk_size: int | None = None):
        super().__init__()
        if anchor is not None and not isinstance(anchor, str):
            raise OptionError("anchor", f"anchor must be a view name (str) or None for the first view, got {anchor!r}.")
        self.anchor = anchor
        self.reduction = check_reduction(reduction)
        self.chunk_size = check_chunk_size(chunk_size)

    @full_precision
    def forward(self, embeddings: Mapping[str, Tensor], *, logit_scale, logit_bias=None, labels=None,
                mask=None) -> Tensor:
        check_embeddings(embeddings, min_views=2, who="anchored_clip")
        names = list(embeddings)
        anchor = names[0] if self.anchor is None else self.anchor
        if anchor not in embeddings:
            raise UnknownNameError("anchor view", anchor, names,
                                   hint=f"The views of this batch are: {', '.join(names)}; set anchor to one of "
                                        f"them (or None for the first).")
        pairs = [(anchor, v) for v in names if v != anchor]
        terms = pair_terms(embeddings, pairs, logit_scale, mask, self.chunk_size, "anchored_clip")
        return reduce_terms(terms, self.reduction, embeddings, logit_scale)

    def extra_repr(self) -> str:
        return f"anchor={self.anchor!r}, reduction={self.reduction!r}, chunk_size={self.chunk_size}"
