"""``model.encode``: raw inputs (or a preprocessed batch) → embeddings, in batches, without autograd.

The core knows no modality by name. Two optional hooks of a modality's registration
(``register(name, load=…, collate=…, is_single=…, length=…)``) say what it needs to know:

- ``is_single(x) -> bool``: ``x`` is *one* raw input (a string, a path, an image tensor
  ``(C, H, W)``, a waveform ``(T,)``, a PyG ``Data``…). Without it, anything that is not a
  list, tuple, numpy array, tensor or mapping is one raw input.
- ``length(raw) -> int``: the cost of one loaded raw (text: its number of characters). When
  given, the inputs of one call are sorted longest first, so a batch pads to similar lengths,
  and the embeddings are put back in the caller's order.

An encoder may sort more precisely: with ``preprocess_items(raws, prompt_name=None) -> (items,
lengths)`` (every input preprocessed at once, unpadded, e.g. one fast-tokenizer call giving token
ids) and ``collate_items(items) -> batch`` (pad a chunk, the batch ``preprocess`` would give),
``encode`` sorts by those lengths (token counts) and never preprocesses an input twice.

What ``encode(modality, inputs)`` does with ``inputs``, in this order:

1. one raw input (``is_single``) → ``(D,)``;
2. a list or tuple of raw inputs, or a numpy array with a leading batch axis → ``(N, D)``;
3. anything else (a tensor with a batch axis, a dict of tensors, a PyG ``Batch``…) is taken as
   the batch the tower's ``preprocess`` returns → ``(B, D)``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from zoo.errors import RecipeError
from zoo.plugins import registry

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
          "float64": torch.float64}


def as_dtype(dtype: Any) -> torch.dtype | None:
    """``None``, a floating ``torch.dtype`` or its name (``"bf16"``, ``"float16"``…) → ``torch.dtype``."""
    if dtype is None or isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.removeprefix("torch.")]
    raise RecipeError(f"dtype {dtype!r} is not a floating-point dtype; use torch.bfloat16, torch.float16, "
                      f"torch.float32 or one of the names {', '.join(DTYPES)}.")


def modality_entry(modality: str):
    """The registered :class:`zoo.registry.ModalitySpec` of ``modality``."""
    return registry().modality(modality)


def is_single(modality: str, x: Any) -> bool:
    """Whether ``x`` is one raw input of ``modality`` (the modality's ``is_single`` hook, else the default)."""
    check = modality_entry(modality).is_single
    if check is not None:
        return bool(check(x))
    return not isinstance(x, (list, tuple, np.ndarray, Tensor, Mapping))


def raw_list(modality: str, x: Any) -> list[Any] | None:
    """``x`` as a list of raw inputs, or ``None`` when ``x`` is a preprocessed batch."""
    if is_single(modality, x):
        return [x]
    if isinstance(x, (list, tuple)):
        return list(x)
    if isinstance(x, np.ndarray):
        return list(x)  # (N, …) → N raws
    return None


def module_dtype(module: torch.nn.Module) -> torch.dtype | None:
    """The dtype of a module's first floating-point parameter (``None`` when it has none)."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def cast_floats(batch: Any, dtype: torch.dtype | None, modality: Any = None) -> Any:
    """Floating tensors of a batch (tensors, and dicts, lists and tuples of them) → ``dtype``; integer
    tensors (token ids, edge indices) are left alone. Any other batch (a PyG ``Batch``) is cast by its
    modality's ``cast`` capability (``modality``: its name or ModalitySpec), or left as collated without one."""
    if dtype is None:
        return batch
    if isinstance(batch, Tensor):
        return batch.to(dtype) if batch.is_floating_point() and batch.dtype != dtype else batch
    if isinstance(batch, Mapping):
        return {k: cast_floats(v, dtype, modality) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(cast_floats(v, dtype, modality) for v in batch)
    spec = registry().modality(modality) if isinstance(modality, str) else modality  # looked up only here
    cast = getattr(spec, "cast", None)
    return cast(batch, dtype) if cast is not None else batch


def longest_first(lengths: list[int]) -> list[int]:
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable: ties keep their order


def batches(tower, raws: list[Any], batch_size: int, prompt_name: str | None) -> tuple[Any, list[int] | None]:
    """``(iterator of preprocessed batches, order)``: the inputs sorted longest first by the encoder's
    ``preprocess_items`` lengths or the modality's ``length`` hook (``order`` is ``None`` when unsorted)."""
    entry = modality_entry(tower.config.modality)
    enc = tower.encoder
    starts = range(0, len(raws), batch_size)
    if hasattr(enc, "preprocess_items") and hasattr(enc, "collate_items"):
        loaded = [entry.load(r) for r in raws]
        items, lengths = enc.preprocess_items(loaded, **({"prompt_name": prompt_name} if prompt_name else {}))
        order = longest_first(lengths)
        items = [items[i] for i in order]
        return (enc.collate_items(items[s:s + batch_size]) for s in starts), order
    length = entry.length
    order = None
    if length is not None and len(raws) > 1:
        raws = [entry.load(r) for r in raws]
        order = longest_first([length(r) for r in raws])
        raws = [raws[i] for i in order]
    return (tower.preprocess(raws[s:s + batch_size], prompt_name=prompt_name) for s in starts), order


def encode(model, key: str, inputs: Any, *, batch_size: int = 32, normalize: bool = True, progress: bool = False,
           device: Any = None, prompt_name: str | None = None) -> Tensor:
    """See :meth:`zoo.ContrastiveModel.encode`."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise RecipeError(f"batch_size must be a positive int, got {batch_size!r}.")
    tower = model.tower(key)
    modality = tower.config.modality
    if device is not None:
        model.to(device)
    single = is_single(modality, inputs)
    raws = raw_list(modality, inputs)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if raws is None:  # already preprocessed
                if prompt_name is not None:
                    raise RecipeError(f"prompt_name={prompt_name!r} applies to raw inputs; pass the texts, not a "
                                      f"preprocessed batch.")
                return model.embed_batch(key, inputs, normalize=normalize)
            if not raws:
                return torch.empty(0, model.embed_dim, device=model.device, dtype=module_dtype(tower))
            tower.check_prompt(prompt_name)
            todo, order = batches(tower, raws, batch_size, prompt_name)
            chunks = [model.embed_batch(key, batch, normalize=normalize)
                      for batch in tqdm(todo, total=-(-len(raws) // batch_size), disable=not progress,
                                        desc=f"encode {key}", unit="batch")]
            z = torch.cat(chunks)  # (N, D), sorted order
            if order is not None:
                z = z[torch.tensor(order, device=z.device).argsort()]  # back to the caller's order
            return z[0] if single else z
    finally:
        model.train(was_training)


def similarity(model, a: Tensor, b: Tensor, *, scaled: bool = False) -> Tensor:
    """Cosine similarity matrix ``(N, M)`` of ``a (N, D)`` and ``b (M, D)`` (a ``(D,)`` is one row); with
    ``scaled=True`` the model's logits ``exp(logit_scale) · cos (+ logit_bias)``, as its objective saw them."""
    a2, b2 = (t.unsqueeze(0) if t.dim() == 1 else t for t in (a, b))
    if a2.dim() != 2 or b2.dim() != 2 or a2.shape[1] != b2.shape[1]:
        from zoo.errors import ShapeError
        raise ShapeError(f"similarity needs (N, D) and (M, D) embeddings with the same D, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}.")
    dtype = torch.promote_types(a2.dtype, b2.dtype)
    sim = F.normalize(a2.to(dtype), dim=-1) @ F.normalize(b2.to(device=a2.device, dtype=dtype), dim=-1).T  # (N, M)
    if scaled:
        with torch.no_grad():
            sim = sim * model.scale().to(sim) + (model.logit_bias.to(sim) if model.logit_bias is not None else 0)
    if a.dim() == 1 and b.dim() == 1:
        return sim[0, 0]
    return sim[0] if a.dim() == 1 else sim[:, 0] if b.dim() == 1 else sim
