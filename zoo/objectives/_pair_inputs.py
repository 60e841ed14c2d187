"""Input checks of the two-view CLIP-family objectives (clip, siglip, their local-loss path, pairwise/anchored).

Private (no registration). Every check raises a :class:`~zoo.errors.ZooError` that names the
fix. :func:`pair_inputs` is the prelude of the functional losses (``clip_loss``, ``siglip_loss``),
:func:`present_views` the one of the modules' ``forward`` (two views, the rows where both are
present), :func:`local_pair` the one of a rank's part of the loss under torchrun.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from zoo.errors import OptionError, RecipeError, ShapeError
from zoo.objectives._autograd import compute_dtype
from zoo.objectives.base import as_scalar, check_embeddings

NO_BIAS = object()  # pair_inputs(logit_bias=NO_BIAS): the objective has no bias (clip)


def check_chunk_size(chunk_size: int | None) -> int | None:
    """``chunk_size`` is ``None`` (dense) or a positive int, else an :class:`OptionError` (a ``ValueError``)."""
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size <= 0):
        raise OptionError("chunk_size", f"chunk_size must be a positive int (columns per block) or None for the dense "
                         f"path, got {chunk_size!r}.")
    return chunk_size


def require_bias(logit_bias, who: str) -> None:
    """A sigmoid objective needs ``logit_bias``: a :class:`RecipeError` (a ``ValueError``) saying where it comes from."""
    if logit_bias is None:
        raise RecipeError(f"{who} needs a logit_bias (the paper initialises it to -10): pass logit_bias=… (a model "
                          f"built with one has it: ContrastiveModel.logit_bias, a learnable scalar), or use the "
                          f"'clip' objective.")


def pair_inputs(a: Tensor, b: Tensor, logit_scale, *, chunk_size: int | None, who: str,
                logit_bias=NO_BIAS) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """The checks of the functional losses: ``(a, b, scale, bias)``, the views ``(N, D)``, ``N ≥ 1``,
    in one dtype of at least float32 and the scalars in that dtype (``bias`` is ``None`` for
    ``NO_BIAS``). A python float scale is not rounded to float32 for float64 embeddings."""
    check_chunk_size(chunk_size)
    if logit_bias is not NO_BIAS:
        require_bias(logit_bias, who)
    a, b = check_embeddings({"a": a, "b": b}, min_views=2, max_views=2, who=who)
    if a.shape[0] == 0:
        raise ShapeError(f"{who}: expected at least one row (B ≥ 1), got an empty batch (0, D).")
    dtype = compute_dtype(a, b)
    a, b = a.to(dtype), b.to(dtype)
    bias = None if logit_bias is NO_BIAS else as_scalar(logit_bias, a)
    return a, b, as_scalar(logit_scale, a), bias


def kept_rows(mask: Mapping[str, Tensor] | None, views: Sequence[str], n: int, device: torch.device,
              who: str, rows: str = "") -> Tensor | None:
    """``(n,)`` bool, True where every one of ``views`` is present; ``None`` without a mask. Views
    the mask does not name are present in every row; ``rows`` says which rows in the shape error."""
    if not mask:
        return None
    keep = torch.ones(n, dtype=torch.bool, device=device)  # (n,)
    for view in views:
        if view in mask:
            if tuple(mask[view].shape) != (n,):
                raise ShapeError(f"{who}: mask[{view!r}] expected {rows}shape ({n},), got {tuple(mask[view].shape)}.")
            keep &= mask[view].to(device=device, dtype=torch.bool)
    return keep


def present_pair(embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None, views: list[str],
                 who: str) -> tuple[Tensor, Tensor]:
    """The two views restricted to the rows where both are present (``mask`` absent → all rows)."""
    a, b = (embeddings[v] for v in views)
    keep = kept_rows(mask, views, a.shape[0], a.device, who)
    return (a, b) if keep is None else (a[keep], b[keep])


def present_views(embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None,
                  who: str) -> tuple[Tensor, Tensor]:
    """The prelude of a two-view module's ``forward``: exactly two ``(B, D)`` views, each restricted
    to the rows where both are present ``(B', D)``."""
    check_embeddings(embeddings, min_views=2, max_views=2, who=who)
    return present_pair(embeddings, mask, list(embeddings), who)


def local_pair(local: Mapping[str, Tensor], gathered: Mapping[str, Tensor], rank_offset: int,
               mask: Mapping[str, Tensor] | None, who: str) -> tuple[Tensor, Tensor, int]:
    """``(a_rows (b', D), b_columns (N', D), offset')``: this rank's present rows of the first view,
    the present global rows of the second, and where this rank's first present row sits among them,
    both in one dtype of at least float32.

    ``mask`` is the gathered one, ``{view: (N,) bool}``; a row counts where every view is present.
    """
    a_loc, _ = check_embeddings(local, min_views=2, max_views=2, who=who)
    check_embeddings(gathered, min_views=2, max_views=2, who=who)
    if list(local) != list(gathered):
        raise ShapeError(f"{who}: local and gathered embeddings must have the same views in the same order, "
                         f"got {list(local)} and {list(gathered)}.")
    cols, b = gathered[list(local)[1]], a_loc.shape[0]
    n = cols.shape[0]
    if not 0 <= rank_offset <= n - b:
        raise ShapeError(f"{who}: rank_offset expected in [0, {n - b}] (the {b} local rows lie inside the {n} "
                         f"gathered ones), got {rank_offset}.")
    keep = kept_rows(mask, list(local), n, cols.device, who, "the gathered ")
    if keep is not None:
        a_loc, cols, rank_offset = a_loc[keep[rank_offset:rank_offset + b]], cols[keep], int(keep[:rank_offset].sum())
    dtype = compute_dtype(a_loc, cols)  # the log-sum-exps are not done in half precision
    return a_loc.to(dtype), cols.to(dtype), rank_offset


def nothing_to_contrast(a: Tensor, b: Tensor) -> Tensor:
    """The loss when no row has both views: a zero connected to the graph of both."""
    return (a.sum() + b.sum()) * 0.0
