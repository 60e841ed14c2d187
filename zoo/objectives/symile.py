"""Symile: contrastive learning over any number of modalities with the multilinear inner product.

Besides :class:`SymileLoss` this file exposes :func:`mip_similarity`, the score Symile uses to
predict one modality from all the others zero-shot. The math (blocked logits, hand-written
backward passes) is in :mod:`._symile_kernels`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from zoo.errors import OptionError, ShapeError
from zoo.objectives._autograd import compute_dtype
from zoo.objectives._symile_kernels import CHUNK_ELEMENTS, SAVE_ELEMENTS, mip_lse, row_lse
from zoo.objectives.base import as_scalar, check_embeddings, full_precision, register_objective

SAMPLINGS = ("n", "n_squared")


def mip_similarity(query: Mapping[str, Tensor], candidates: Tensor) -> Tensor:
    """Zero-shot scores ``(B, C)`` of candidates of one modality given the other modalities.

    ``score[i, c] = Σ_d candidates[c, d] · Π_m query[m][i, d]`` (the multilinear inner product of
    the candidate with row ``i`` of every query view), as ``symile.MIPSimilarity`` computes it.
    ``query``: ``{view: (B, D)}`` (one or more views); ``candidates``: ``(C, D)``.
    Example: ``mip_similarity({"audio": za, "text": zt}, z_images).argmax(1)`` retrieves an image.
    """
    qs = check_embeddings(query, min_views=1, who="mip_similarity")
    dim = qs[0].shape[1]
    if candidates.dim() != 2 or candidates.shape[1] != dim:
        raise ShapeError(f"mip_similarity: candidates expected shape (C, {dim}) like the query views, "
                         f"got {tuple(candidates.shape)}.")
    product = qs[0]
    for q in qs[1:]:
        product = product * q  # (B, D)
    return product @ candidates.to(product.dtype).T  # (B, C)


def check_elements(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionError(name, f"{name} must be an int ≥ {minimum} (a number of tensor elements), got {value!r}.")


def presence(mask: Mapping[str, Tensor] | None, names: Sequence[str], batch: int,
             device: torch.device) -> Tensor | None:
    """``(M, B)`` bool, True where view ``m`` is present in row ``i``; ``None`` when all are present.

    Views absent from ``mask`` are present in every row; keys naming no view are ignored (a mask
    may cover modalities this objective does not see), as ``clip`` does.
    """
    if not mask:
        return None
    rows = []
    for name in names:
        m = mask.get(name)
        if m is None:
            rows.append(torch.ones(batch, dtype=torch.bool, device=device))
            continue
        if tuple(m.shape) != (batch,):
            raise ShapeError(f"symile: mask[{name!r}] expected shape ({batch},), got {tuple(m.shape)}.")
        rows.append(m.to(device=device, dtype=torch.bool))
    present = torch.stack(rows)  # (M, B)
    return None if bool(present.all()) else present


def positive_mips(xs: Sequence[Tensor]) -> Tensor:
    """``Σ_d Π_m x_m[i, d]`` for every row: ``(B,)``."""
    product = xs[0]
    for x in xs[1:]:
        product = product * x
    return product.sum(1)


@register_objective("symile", citation="Saporta et al. 2024, Contrasting with Symile: Simple Model-Agnostic "
                                       "Representation Learning for Unlimited Modalities, NeurIPS 2024 "
                                       "(arXiv:2411.01053)")
class SymileLoss(nn.Module):
    """Symile: InfoNCE over M ≥ 2 modalities, scored by the multilinear inner product (MIP).

    Paper: Saporta, Puli, Goldstein, Ranganath 2024, "Contrasting with Symile" (NeurIPS 2024), a
    lower bound on total correlation. With ``MIP(u, v, …, w) = Σ_d u_d v_d ⋯ w_d`` and ``s = 1/τ``,
    each view ``m`` in turn is the anchor; the candidates of row ``i`` are combinations of rows of
    the *other* views, the positive being row ``i`` of all of them::

        ℓ_m(i) = −log  exp(s·MIP(x_m[i], x_{−m}[i]))  /  Σ_{c ∈ C_m(i)} exp(s·MIP(x_m[i], c))
        loss   = 1/M Σ_m  1/B Σ_i ℓ_m(i)

    ``negative_sampling="n_squared"``: ``C_m(i)`` is every combination of rows of the other views
    (``B^{M−1}`` candidates, ``B^{M−1} − 1`` negatives), as ``symile.Symile("n_squared")``.
    ``negative_sampling="n"``: ``B`` candidates; for each anchor the other views' rows are shuffled
    by one random permutation each (drawn with ``torch.randperm`` from ``generator``, default the
    global generator, in the reference's order) and multiplied row-wise, and candidate ``i`` is
    replaced by the positive, as ``symile.Symile("n")``: values equal under the same seed. This
    is the only state the loss reads; seed it for reproducibility.

    Shapes: embeddings ``{view: (B, D)}``, M ≥ 2 views, L2-normalised; returns a 0-d tensor.
    ``M = 2`` with ``"n_squared"`` is exactly CLIP (the mean of both directions).

    Missing modalities, ``mask={view: (B,) bool}`` (True = present): a Symile term is defined only
    where every MIP it needs exists, so (i) only rows with all M views present are anchors (their
    positive needs every view), and the loss is the mean over those rows; (ii) candidates are the
    combinations of *present* rows only — a present view of an incomplete row still serves as a
    negative for other rows, a missing view's embedding never enters any logit. A missing
    embedding thus has no influence on the loss (its gradient is exactly zero, NaN included), and a
    mask that marks everything present gives the unmasked loss. (The paper's own experiments
    instead encode a missing input with a learned "missing" embedding inside the encoder; do that
    in the tower and pass no mask to reproduce them.) With ``"n"`` sampling the same rule drops a
    shuffled candidate in which any view is missing. No complete row → a zero loss (with a graph).

    Cost: ``"n_squared"`` shares one logits tensor between the M anchor terms, built block by block
    with one GEMM each and differentiated by hand (see :mod:`._symile_kernels`): memory O(block) instead of
    O(B^{M−1}·D), for M = 3 a third of the reference's matrix products. ``"n"`` streams each
    anchor's ``(B, B)`` logits in row blocks. ``chunk_elements`` bounds one block's elements,
    ``save_elements`` the exp-logits kept from forward to backward (else recomputed).
    ``logit_bias``/``labels`` are ignored (a bias cancels in the softmax).

    Example:
        >>> loss = SymileLoss("n_squared")({"image": zi, "text": zt, "audio": za},
        ...                                logit_scale=torch.tensor(14.3))
    """

    similarity = staticmethod(mip_similarity)  # its score of one view given the others (zoo.evaluation.plots draws it)

    def __init__(self, negative_sampling: str = "n", *, generator: torch.Generator | None = None,
                 chunk_elements: int = CHUNK_ELEMENTS, save_elements: int = SAVE_ELEMENTS):
        super().__init__()
        if negative_sampling not in SAMPLINGS:
            raise OptionError("negative_sampling",
                              f"negative_sampling must be 'n' (B−1 negatives per anchor, shuffled) or 'n_squared' "
                              f"(all B^(M−1)−1 combinations), got {negative_sampling!r}.")
        check_elements("chunk_elements", chunk_elements, minimum=1)
        check_elements("save_elements", save_elements, minimum=0)
        self.negative_sampling = negative_sampling
        self.generator = generator
        self.chunk_elements, self.save_elements = chunk_elements, save_elements

    @full_precision
    def forward(self, embeddings: Mapping[str, Tensor], *, logit_scale, logit_bias=None, labels=None,
                mask=None) -> Tensor:
        xs = check_embeddings(embeddings, min_views=2, who="symile")
        if xs[0].shape[0] == 0:
            raise ShapeError("symile: expected at least one row (B ≥ 1), got an empty batch (0, D).")
        dtype = compute_dtype(*xs)  # 16-bit floats are computed in float32 (exp and log-sums)
        xs = [x.to(dtype) for x in xs]
        scale = as_scalar(logit_scale, xs[0])
        present = presence(mask, list(embeddings), xs[0].shape[0], xs[0].device)
        complete = None if present is None else present.all(0)  # (B,)
        if complete is not None and not bool(complete.any()):
            return sum(x.sum() for x in xs) * 0.0 + scale * 0.0  # nothing is defined
        if self.negative_sampling == "n_squared":
            return self._all_combinations(xs, scale, present, complete)
        return self._shuffled(xs, scale, present, complete)

    def _all_combinations(self, xs: list[Tensor], scale: Tensor, present: Tensor | None,
                          complete: Tensor | None) -> Tensor:
        """O(B^{M−1}) negatives: every combination of present rows of the other views."""
        m, batch = len(xs), xs[0].shape[0]
        if present is None:
            parts, weights = xs, [xs[0].new_full((batch,), 1.0 / (m * batch))] * m
            positives = positive_mips(xs)  # (B,)
        else:
            n = int(complete.sum())
            parts = [x[p] for x, p in zip(xs, present)]  # (n_m, D) present rows only
            weights = [self._anchor_weights(p, complete, 1.0 / (m * n)).to(xs[0].dtype) for p in present]
            positives = positive_mips([x[complete] for x in xs])  # (n,)
        lse = mip_lse(parts, weights, scale, chunk_elements=self.chunk_elements,
                      save_elements=self.save_elements)
        return lse - scale * positives.mean()

    @staticmethod
    def _anchor_weights(present: Tensor, complete: Tensor, value: float) -> Tensor:
        """``(n_m,)`` over view m's present rows: ``value`` at complete rows (anchors), else 0."""
        slot = present.cumsum(0) - 1  # row i → its index among the present rows
        w = torch.zeros(int(present.sum()), dtype=torch.float64, device=present.device)
        w[slot[complete]] = value
        return w

    def _shuffled(self, xs: list[Tensor], scale: Tensor, present: Tensor | None,
                  complete: Tensor | None) -> Tensor:
        """O(B) negatives per anchor: the other views shuffled, positives on the diagonal."""
        m, batch = len(xs), xs[0].shape[0]
        if present is not None:  # a missing embedding must not reach a logit, not even as NaN·0
            xs = [torch.where(p[:, None], x, 0.0) for x, p in zip(xs, present)]
            n = int(complete.sum())
            w = torch.where(complete, 1.0 / (m * n), 0.0).to(xs[0].dtype)
        else:
            w = xs[0].new_full((batch,), 1.0 / (m * batch))
        diag = scale * positive_mips(xs)  # (B,) positive logits
        total = 0.0
        for anchor in range(m):
            q, ok = self._shuffled_candidates(xs, present, anchor)
            bias = None if ok is None or bool(ok.all()) else torch.where(ok, 0.0, float("-inf")).to(q.dtype)
            total = total + row_lse(xs[anchor], q, diag, scale, w.to(q.dtype), bias,
                                    chunk_elements=self.chunk_elements, save_elements=self.save_elements)
        mean_positive = diag.mean() if complete is None else diag[complete].mean()
        return total - mean_positive

    def _shuffled_candidates(self, xs: list[Tensor], present: Tensor | None,
                             anchor: int) -> tuple[Tensor, Tensor | None]:
        """Row-wise product of the other views, each shuffled, ``(B, D)``; which candidates exist."""
        batch = xs[0].shape[0]
        q, ok = None, None
        for view, x in enumerate(xs):
            if view == anchor:
                continue
            perm = torch.randperm(batch, generator=self.generator).to(x.device)  # the reference's draw order
            q = x[perm] if q is None else q * x[perm]
            if present is not None:
                ok = present[view][perm] if ok is None else ok & present[view][perm]
        return q, ok

    def extra_repr(self) -> str:
        return f"negative_sampling={self.negative_sampling!r}"
