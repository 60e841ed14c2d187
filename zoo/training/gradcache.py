"""GradCache (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup").

A contrastive loss couples every row with every other, so the batch cannot simply be split
into micro-batches whose losses are averaged (each micro-batch would lose the others as
negatives). GradCache keeps the full-batch loss and bounds memory instead:

1. encode the batch in chunks **without** a graph, remembering the RNG state before each chunk;
2. compute the loss on the cached embeddings and backpropagate into them only: ``g = ∂L/∂z``;
3. re-encode chunk by chunk **with** a graph, restoring each chunk's RNG state so that dropout
   draws the same masks, and backpropagate ``g[chunk]`` through it.

Peak activation memory is that of one chunk; the gradients equal those of the full-batch loss
computed with the same per-chunk dropout masks.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from zoo.data.batches import batch_size, slice_batch
from zoo.errors import ShapeError

if TYPE_CHECKING:
    from zoo.training.step import Encoded


def _rng_state(device: torch.device):
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _leaf(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.detach().requires_grad_(True)


def grad_cache_backward(encode: Callable[[Mapping[str, tuple[str, Any]]], Encoded],
                        views: Mapping[str, tuple[str, Any]], loss_fn: Callable[[Encoded], Tensor],
                        chunk: int, device: torch.device, modalities: Mapping[str, Any] | None = None) -> Tensor:
    """Run forward + backward of ``loss_fn(encode(views))`` chunk by chunk; return the (detached) loss.

    ``encode`` maps ``{view: (tower, batch)}`` to an :class:`~zoo.training.step.Encoded`: per-row
    embeddings ``{key: (b, D)}`` (keys may include ``"view/level"``) plus the temperature and bias;
    ``loss_fn`` maps the full batch's ``Encoded`` to a scalar. ``modalities``: ``{tower: ModalitySpec}``,
    whose ``count``/``slice`` split batches that are no tensors or lists (PyG).
    """
    spec = (modalities or {}).get
    n = next((m for t, b in views.values() if (m := batch_size(b, spec(t))) is not None), None)
    if n is None:
        raise ShapeError(f"GradCache cannot count the rows of the views {list(views)}: pass modalities= "
                         f"{{tower: ModalitySpec}} whose count= knows these batches, or set run.grad_cache_chunk = 0.")
    bounds = [(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    states, cached = [], []
    with torch.no_grad():                                   # 1. embeddings without a graph
        for lo, hi in bounds:
            states.append(_rng_state(device))
            cached.append(encode({v: (t, slice_batch(b, lo, hi, spec(t))) for v, (t, b) in views.items()}))
    end_state = _rng_state(device)
    # the rows' embeddings are concatenated; the temperature and bias are the same in every chunk
    # and take their gradient once, with the first chunk
    first = cached[0]
    full = first._replace(embeddings={k: _leaf(torch.cat([c.embeddings[k] for c in cached])) for k in first.embeddings},
                          logit_scale=_leaf(first.logit_scale), logit_bias=_leaf(first.logit_bias))
    loss = loss_fn(full)                                    # 2. loss on the cache
    loss.backward()
    for (lo, hi), state in zip(bounds, states):            # 3. re-encode with a graph, chunk by chunk
        _set_rng_state(state, device)
        out = encode({v: (t, slice_batch(b, lo, hi, spec(t))) for v, (t, b) in views.items()})
        pairs = [(out.embeddings[k], z.grad[lo:hi]) for k, z in full.embeddings.items() if z.grad is not None]
        if lo == 0:
            pairs += [(o, z.grad) for o, z in ((out.logit_scale, full.logit_scale), (out.logit_bias, full.logit_bias))
                      if z is not None and z.grad is not None]
        pairs = [(o, g) for o, g in pairs if o.requires_grad]  # a frozen tower or a fixed temperature has no graph
        if pairs:
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
    _set_rng_state(end_state, device)
    return loss.detach()
