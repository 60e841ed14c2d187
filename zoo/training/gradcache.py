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
from typing import Any

import torch
from torch import Tensor

from zoo.data.batches import batch_size, slice_batch
from zoo.errors import ShapeError


def _rng_state(device: torch.device):
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _shared(key: str) -> bool:
    return key.startswith("__") and key.endswith("__")


def grad_cache_backward(encode: Callable[[Mapping[str, tuple[str, Any]]], dict[str, Tensor]],
                        views: Mapping[str, tuple[str, Any]], loss_fn: Callable[[dict[str, Tensor]], Tensor],
                        chunk: int, device: torch.device, modalities: Mapping[str, Any] | None = None) -> Tensor:
    """Run forward + backward of ``loss_fn(encode(views))`` chunk by chunk; return the (detached) loss.

    ``encode`` maps ``{view: (tower, batch)}`` to ``{key: (b, D)}`` (keys may include
    ``"view/level"``); ``loss_fn`` maps the full embeddings to a scalar. ``modalities``: ``{tower:
    ModalitySpec}``, whose ``count``/``slice`` split batches that are no tensors or lists (PyG).
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
    # per-row outputs are concatenated; shared ones (keys "__…__", e.g. the temperature) are the
    # same in every chunk and take their gradient once, with the first chunk
    full = {k: (cached[0][k] if _shared(k) else torch.cat([c[k] for c in cached])).detach().requires_grad_(True)
            for k in cached[0]}
    loss = loss_fn(full)                                    # 2. loss on the cache
    loss.backward()
    for (lo, hi), state in zip(bounds, states):            # 3. re-encode with a graph, chunk by chunk
        _set_rng_state(state, device)
        out = encode({v: (t, slice_batch(b, lo, hi, spec(t))) for v, (t, b) in views.items()})
        keys = [k for k in out if full[k].grad is not None and (not _shared(k) or lo == 0)]
        torch.autograd.backward([out[k] for k in keys], [full[k].grad if _shared(k) else full[k].grad[lo:hi]
                                                         for k in keys])
    _set_rng_state(end_state, device)
    return loss.detach()
