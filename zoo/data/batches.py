"""Batches as the core sees them without knowing the modality: moving, counting rows, slicing.

Tensors, lists, tuples and dicts of them are handled here; any other batch type (a PyG ``Batch``) is
counted and sliced by its modality's ``count``/``slice`` capabilities, which callers pass in."""
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


def pin(batch: Any) -> Any:
    """Page-locked copies of the tensors in a batch (in dicts, lists, tuples, or objects with ``pin_memory``,
    a PyG ``Batch``): copied to a GPU without blocking, while it still computes."""
    if isinstance(batch, torch.Tensor) or hasattr(batch, "pin_memory") and not isinstance(batch, (Mapping, str, bytes)):
        return batch.pin_memory()
    if isinstance(batch, Mapping):
        return {k: pin(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(pin(v) for v in batch)
    return batch


def batch_size(batch: Any, modality: Any = None) -> int | None:
    """Number of rows of a batch: the first tensor's first dim, ``len`` of a list, or, for any other batch
    (a PyG ``Batch``), the modality's ``count`` capability. ``modality``: the batch's
    :class:`zoo.registry.ModalitySpec` (or its name); without it such a batch has no known size (None)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    if isinstance(batch, Mapping):
        for v in batch.values():
            n = batch_size(v, modality)
            if n is not None:
                return n
        return None
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        return len(batch)
    count = getattr(_spec(modality), "count", None)
    return int(count(batch)) if count is not None and batch is not None else None


def slice_batch(batch: Any, start: int, stop: int, modality: Any = None) -> Any:
    """Rows ``start:stop`` of a batch: tensors, dicts/lists of them, lists of raws, or any other batch through
    its modality's ``slice`` capability (``modality``: a :class:`zoo.registry.ModalitySpec` or its name)."""
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if isinstance(batch, Mapping):
        n = batch_size(batch, modality)
        return {k: slice_batch(v, start, stop, modality) if batch_size(v, modality) == n else v
                for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return batch[start:stop]
    spec = _spec(modality)
    if getattr(spec, "slice", None) is not None:
        return spec.slice(batch, start, stop)
    which = f"modality {spec.name!r}" if spec is not None else "its modality (none was given)"
    raise ShapeError(f"cannot split a batch of type {type(batch).__name__} into chunks: it is no tensor, list or "
                     f"dict of them, and {which} registers no slice= capability. GradCache needs one: register the "
                     f"modality with count= and slice= (see zoo.hookspecs.zoo_register_modalities), or set "
                     f"run.grad_cache_chunk = 0.")


def _spec(modality: Any) -> Any:
    """A modality name → its registered spec; a spec (or None) as it is."""
    if isinstance(modality, str):
        from zoo.plugins import registry
        return registry().modality(modality)
    return modality
