"""Collectives the objectives' per-rank kernels need, beside the trainer's gathers (``zoo.training.distributed``),
so that an objective never imports the trainer. Without an initialised process group each is the identity."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def all_reduce_logsumexp(x: Tensor) -> Tensor:
    """Elementwise ``log Σ_ranks exp(x)`` (stable: a max all-reduce, then a sum one; O(len(x)) memory)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    top = x.detach().clone()
    dist.all_reduce(top, op=dist.ReduceOp.MAX)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # a column of -inf stays -inf
    total = (x.detach() - top).exp()
    dist.all_reduce(total)
    return total.log() + top
