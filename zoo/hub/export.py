"""Writing a zoo model in another library's format: ``model.export(format, directory)``.

    model = zoo.load("st:all-MiniLM-L6-v2")
    model.export("sentence-transformers", "out/minilm")      # SentenceTransformer("out/minilm")
    model.export("open_clip", "out/clip")                     # open_clip.create_model_and_transforms("local-dir:out/clip")

Each format is a function registered under its name with :func:`exporter` in the module that
defines it (``zoo.hub.exporters.*``). A format asks each tower how it is expressed there through a
method of the tower's encoder (``sentence_transformers_parts()``, ``open_clip_parts()``); a tower
without one, or a projection the format has no place for, is an :class:`ExportError` naming
the tower and what to do, raised before anything is written.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.errors import UnknownNameError, ZooError

BUILTIN = ("zoo.hub.exporters.sentence_transformers", "zoo.hub.exporters.open_clip")
EXPORTERS: dict[str, Callable[..., Path]] = {}


class ExportError(ZooError, ValueError):
    """The model (or one of its towers) has no representation in the requested format."""


def exporter(fmt: str) -> Callable[[Callable[..., Path]], Callable[..., Path]]:
    """Register ``fn(model, directory, **options) -> Path`` as the writer of format ``fmt``."""
    def add(fn: Callable[..., Path]) -> Callable[..., Path]:
        if fmt in EXPORTERS and EXPORTERS[fmt] is not fn:
            raise ZooError(f"export format {fmt!r} is registered twice ({EXPORTERS[fmt].__module__} and "
                           f"{fn.__module__}); rename one of them.")
        EXPORTERS[fmt] = fn
        return fn
    return add


def formats() -> list[str]:
    for mod in BUILTIN:
        importlib.import_module(mod)
    return sorted(EXPORTERS)


def export(model, fmt: str, directory: str | Path, **options: Any) -> Path:
    """Write ``model`` to ``directory`` in format ``fmt`` (see :func:`formats`); returns the directory."""
    known = formats()
    if fmt not in known:
        raise UnknownNameError("export format", fmt, known)
    return EXPORTERS[fmt](model, Path(directory), **options)


def pick_tower(model, modality: str, tower: str | None, fmt: str) -> str:
    """The tower to export for a one-tower format: ``tower`` if given, else the only one of ``modality``."""
    if tower is not None:
        model.tower(tower)
        return tower
    keys = [k for k, t in model.towers.items() if t.config.modality == modality]
    if len(keys) != 1:
        raise ExportError(f"{fmt} holds one {modality} tower; this model has {len(keys)} ({keys or 'none'}) among "
                          f"{list(model.towers)}. Pass tower=<key> (CLI: --tower KEY).")
    return keys[0]


def parts(model, key: str, method: str, fmt: str) -> dict[str, Any]:
    """``encoder.<method>()`` of tower ``key``, or an :class:`ExportError` saying it has none."""
    tower = model.tower(key)
    get = getattr(tower.encoder, method, None)
    if get is None:
        raise ExportError(f"tower {key!r} (encoder {tower.config.encoder!r}, {type(tower.encoder).__name__}) cannot "
                          f"be expressed in the {fmt} format: its encoder has no {method}(). Export a model whose "
                          f"{tower.config.modality} tower is one the format knows, or keep it in the zoo format "
                          f"(model.save_pretrained).")
    return get()


def projection_layers(model, key: str) -> list[tuple[Any, Any]]:
    """The tower's projection as ``[(nn.Linear, activation module)]`` (empty for ``"none"``)."""
    from torch import nn
    proj = model.tower(key).projection
    if isinstance(proj, nn.Identity):
        return []
    if isinstance(proj, nn.Linear):
        return [(proj, nn.Identity())]
    layers = list(proj)  # mlp: Linear, GELU, Linear
    return [(layers[0], layers[1]), (layers[2], nn.Identity())]

