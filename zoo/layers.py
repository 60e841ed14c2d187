"""The layer stack of the MLP encoders (the core's ``vector`` modality and the plugins' MLPs)."""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Callable

from torch import Tensor, nn


def mlp_blocks(dims: Sequence[int], activation: Callable[[], nn.Module] = nn.GELU,
               dropout: float = 0.0) -> nn.ModuleList:
    """Linear layers ``dims[0] → dims[1] → … → dims[-1]``, each but the last followed by
    ``activation()`` and ``Dropout(dropout)``: the layer stack of the MLP encoders (see :func:`mlp_levels`)."""
    last = len(dims) - 2
    return nn.ModuleList(
        nn.Sequential(nn.Linear(a, b), activation(), nn.Dropout(dropout)) if i < last else nn.Linear(a, b)
        for i, (a, b) in enumerate(itertools.pairwise(dims)))


def mlp_levels(blocks: nn.ModuleList, x: Tensor) -> dict[str, Tensor]:
    """``x`` through :func:`mlp_blocks`' ``blocks``; the output of each hidden block is a level:
    ``{"layer1": (B, hidden), …, "final": (B, out)}`` (an encoder's ``forward_levels``)."""
    out = {}
    for i, block in enumerate(blocks):
        x = block(x)
        out[f"layer{i + 1}" if i < len(blocks) - 1 else "final"] = x
    return out
