"""Retrieval for every modality: ``embed`` a corpus, ``index`` it (FAISS), ``search`` it, ``serve`` a page.

    zoo.retrieval.embed("runs/digits-clip", "digits", "emb/digits", split="test")
    zoo.retrieval.index("emb/digits")
    zoo.retrieval.search("emb/digits", "text", "a photo of the number seven", k=10)
    zoo.retrieval.serve(indexes=["emb/digits"], models=["runs"])

See docs/search.md for the directory layout and the commands.
"""
from __future__ import annotations

from zoo.retrieval.embed import embed
from zoo.retrieval.index import index
from zoo.retrieval.search import Searcher, search


def serve(*args, **kw):
    """Serve the search page (needs fastapi + uvicorn: ``pip install zoo[serve]``)."""
    from zoo.retrieval.serve import serve as _serve
    return _serve(*args, **kw)


__all__ = ["embed", "index", "search", "serve", "Searcher"]
