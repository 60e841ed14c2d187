"""``zoo.load(name)`` and ``zoo.list_models()``: names resolve through registered sources.

A name is ``<prefix>:<rest>``; each prefix (``local-dir``, ``hf-hub``, ``open_clip``, ``hf``,
``st``, …) is registered by a plugin through ``zoo_register_pretrained``.
"""
from __future__ import annotations

import contextlib
import fnmatch
import os
from typing import Any

from zoo.errors import CheckpointError, UnknownNameError
from zoo.hub.offline import offline_hint, offline_while_unreachable
from zoo.plugins import registry


def load(name: str, *, pretrained: bool = True, device=None, dtype=None):
    """Load a model by catalog name; returns a :class:`ContrastiveModel` in eval mode.

    ``pretrained=False`` builds the architecture only (random weights). ``device`` and ``dtype``
    (``torch.bfloat16``, ``"fp16"``…) move and cast the weights; ``encode`` casts each
    preprocessed batch to its tower's dtype. The model's ``source`` attribute says where its
    weights came from.
    """
    from zoo.hub.format import check_device
    device = check_device(device)  # a missing GPU fails before anything is downloaded or built
    from zoo.inference import as_dtype
    dtype = as_dtype(dtype)  # a bad dtype fails before anything loads
    reg = registry()
    prefix, sep, rest = name.partition(":")
    if not sep or (len(prefix) == 1 and os.name == "nt"):
        _reject_unprefixed(name, reg.names("pretrained"))
    entry = reg.get("pretrained", prefix)
    _suggest_st(entry.name, rest)
    local = entry.name == "local-dir" or os.path.exists(os.path.expanduser(rest.partition("@")[0]))
    with contextlib.ExitStack() as stack:
        offline = False if local else stack.enter_context(offline_while_unreachable())
        try:
            model = entry.factory(rest, pretrained=pretrained)
        except CheckpointError as exc:
            if offline:
                raise CheckpointError(f"{exc}\n{offline_hint(name)}") from exc
            raise
        if pretrained and entry.meta.get("origin") is not None and not getattr(model, "origins", None):
            model.origins = [{"name": f"{entry.name}:{rest}", **entry.meta["origin"](rest)}]
    if not pretrained:
        model.source = f"{name} (architecture only, random weights)"
    model.eval()
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    return model


def _suggest_st(prefix: str, rest: str) -> None:
    """``hf:sentence-transformers/…`` (or any other source) for a sentence-transformers repo: say ``st:``."""
    if prefix != "st" and rest.startswith("sentence-transformers/") and "st" in registry().names("pretrained"):
        raise UnknownNameError("model", f"{prefix}:{rest}", [f"st:{rest}"],
                               hint=f"sentence-transformers models load with the st: source: "
                                    f"zoo.load('st:{rest}').")


def _reject_unprefixed(name: str, prefixes: list[str]):
    if name.startswith("sentence-transformers/") and "st" in prefixes:
        raise UnknownNameError("model", name, [f"st:{name}"],
                               hint=f"sentence-transformers models load with the st: source: zoo.load('st:{name}').")
    if os.path.exists(name) or "/" in name or "\\" in name or name.startswith("."):
        raise UnknownNameError(
            "model", name, [],
            hint=f"{name!r} looks like a path or a repo id but has no source prefix, so it is ambiguous. Say which: "
                 f"'local-dir:{name}' (a zoo checkpoint directory), 'hf-hub:{name}' (a zoo checkpoint on the Hub), "
                 f"'hf:{name}' (a transformers checkpoint), 'open_clip:{name}'.")
    raise UnknownNameError("model", name, list_models(f"*{name}*")[:20] or [p + ":" for p in prefixes],
                           hint=f"Names take a source prefix: {', '.join(p + ':' for p in prefixes)}. "
                                f"`zoo list models` lists what is loadable.")


def list_models(pattern: str | None = None) -> list[str]:
    """Every loadable name the registered sources can list, optionally filtered by a glob."""
    return sorted(list_models_offline(pattern))


def list_models_offline(pattern: str | None = None) -> dict[str, bool | None]:
    """``{name: loads without a network?}`` for :func:`list_models`' names (``None``: the source cannot tell).

    A pattern written with an alias (``openclip:*``) matches the names of its source (``open_clip:*``)."""
    reg = registry()
    if pattern and ":" in pattern:
        head, _, tail = pattern.partition(":")
        pattern = f"{reg.canonical('pretrained', head)}:{tail}"
    out: dict[str, bool | None] = {}
    for entry in reg.entries("pretrained"):
        lister = entry.meta.get("list_names")
        if lister is None:
            continue
        offline = entry.meta.get("offline")
        for n in lister():
            full = f"{entry.name}:{n}"
            if not pattern or fnmatch.fnmatch(full.lower(), pattern.lower()):
                out[full] = bool(offline(n)) if offline is not None else None
    return dict(sorted(out.items()))


def info(name: str) -> dict[str, Any]:
    """What ``zoo info NAME`` shows for a model name (the source's ``info`` hook, else a load)."""
    prefix, _, rest = name.partition(":")
    entry = registry().get("pretrained", prefix)
    prefix = entry.name
    getter = entry.meta.get("info")
    if getter is not None:
        with offline_while_unreachable():
            return {"name": name, "source": prefix, **getter(rest)}
    model = load(name, pretrained=False)
    return {"name": name, "source": prefix, "modalities": model.modalities, "embed_dim": model.embed_dim,
            "towers": {k: t.config.encoder for k, t in model.towers.items()}}
