"""Batches as the core sees them without knowing the modality: moving, counting rows, slicing."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from zoo.errors import ShapeError


def move_to(batch: Any, device: torch.device | str | None, non_blocking: bool = False) -> Any:
    """Move tensors (in dicts, lists, tuples, or objects with ``.to``) to ``device``."""
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor) or hasattr(batch, "to") and not isinstance(batch, (Mapping, str, bytes)):
        try:
            return batch.to(device, non_blocking=non_blocking)
        except TypeError:
            return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device, non_blocking) for v in batch)
    return batch


def batch_size(batch: Any) -> int | None:
    """Number of rows of a batch (first tensor's first dim, ``num_graphs``, or ``len``)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    if hasattr(batch, "num_graphs"):
        return int(batch.num_graphs)
    if isinstance(batch, Mapping):
        for v in batch.values():
            n = batch_size(v)
            if n is not None:
                return n
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        return len(batch)
    return None


def slice_batch(batch: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a batch: tensors, dicts/lists of them, PyG batches, lists of raws."""
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if hasattr(batch, "num_graphs") and hasattr(batch, "index_select"):
        return type(batch).from_data_list(batch.index_select(slice(start, stop)))
    if isinstance(batch, Mapping):
        n = batch_size(batch)
        return {k: slice_batch(v, start, stop) if batch_size(v) == n else v for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return batch[start:stop]
    raise ShapeError(f"cannot split a batch of type {type(batch).__name__} into chunks; "
                     f"GradCache needs tensors, dicts of tensors, lists or PyG batches.")
