"""``zoo.load(name)`` and ``zoo.list_models()``: names resolve through registered sources.

A name is ``<prefix>:<rest>``; each prefix (``local-dir``, ``hf-hub``, ``openclip``, ``hf``,
``st``, …) is registered by a plugin through ``zoo_register_pretrained``.
"""
from __future__ import annotations

import fnmatch
import os
from typing import Any

from .errors import UnknownNameError
from .plugins import registry


def load(name: str, *, pretrained: bool = True, device=None, dtype=None):
    """Load a model by catalog name; returns a :class:`ContrastiveModel` in eval mode.

    ``pretrained=False`` builds the architecture only (random weights). ``device`` and ``dtype``
    (``torch.bfloat16``, ``"fp16"``…) move and cast the weights; ``encode`` casts each
    preprocessed batch to its tower's dtype. The model's ``source`` attribute says where its
    weights came from.
    """
    from .inference import as_dtype
    dtype = as_dtype(dtype)  # a bad dtype fails before anything loads
    reg = registry()
    prefix, sep, rest = name.partition(":")
    if not sep or (len(prefix) == 1 and os.name == "nt"):
        _reject_unprefixed(name, reg.names("pretrained"))
    entry = reg.get("pretrained", prefix)
    model = entry.factory(rest, pretrained=pretrained)
    if not pretrained:
        model.source = f"{name} (architecture only, random weights)"
    model.eval()
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    return model


def _reject_unprefixed(name: str, prefixes: list[str]):
    if os.path.exists(name) or "/" in name or "\\" in name or name.startswith("."):
        raise UnknownNameError(
            "model", name, [],
            hint=f"{name!r} looks like a path or a repo id but has no source prefix, so it is ambiguous. Say which: "
                 f"'local-dir:{name}' (a zoo checkpoint directory), 'hf-hub:{name}' (a zoo checkpoint on the Hub), "
                 f"'hf:{name}' (a transformers checkpoint), 'openclip:{name}'.")
    raise UnknownNameError("model", name, list_models(f"*{name}*")[:20] or [p + ":" for p in prefixes],
                           hint=f"Names take a source prefix: {', '.join(p + ':' for p in prefixes)}. "
                                f"`zoo list models` lists what is loadable.")


def list_models(pattern: str | None = None) -> list[str]:
    """Every loadable name the registered sources can list, optionally filtered by a glob."""
    names: list[str] = []
    for entry in registry().entries("pretrained"):
        lister = entry.meta.get("list_names")
        if lister is not None:
            names.extend(f"{entry.name}:{n}" for n in lister())
    names = sorted(set(names))
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n.lower(), pattern.lower())]
    return names


def info(name: str) -> dict[str, Any]:
    """What ``zoo info NAME`` shows for a model name (the source's ``info`` hook, else a load)."""
    prefix, _, rest = name.partition(":")
    entry = registry().get("pretrained", prefix)
    getter = entry.meta.get("info")
    if getter is not None:
        return {"name": name, "source": prefix, **getter(rest)}
    model = load(name, pretrained=False)
    return {"name": name, "source": prefix, "modalities": model.modalities, "embed_dim": model.embed_dim,
            "towers": {k: t.config.encoder for k, t in model.towers.items()}}
