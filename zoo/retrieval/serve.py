"""``zoo serve``: a local page to browse models and search indexes (FastAPI + uvicorn, plain HTML/JS).

Safety: it binds to 127.0.0.1 unless told otherwise; a request names an index, a run or a plot by
its position or by a name taken from the server's own listing, never by a path, so no request
path reaches the filesystem; uploads are capped at ``max_upload`` bytes; a bad query is a 4xx
with a message. Raw items are drawn by their modality plugin's ``render`` capability
(``register(name, …, render=fn)``, ``fn(raw) -> (mime, bytes)``); a modality without one shows
its pointer only.

(No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations, which name
classes imported inside :func:`create_app`.)
"""
import functools
import json
import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from zoo.checks import require
from zoo.errors import DataError, ZooError
from zoo.plugins import registry
from zoo.retrieval.search import Searcher

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class NotFoundError(LookupError, ZooError):
    """An index, field or row the server does not have: answered with 404 (LookupError comes first in
    the MRO, so the LookupError handler, not the ZooError one, answers it)."""


def _require():
    """fastapi and python-multipart (uvicorn comes with the same extra), or a PluginError naming ``zoo[serve]``."""
    require("fastapi", "serve", "`zoo serve`")
    require("python_multipart", "serve", "`zoo serve`", package="python-multipart")


def find_runs(folders: list[str | os.PathLike]) -> list[Path]:
    """Run directories (holding ``config.json``): each folder itself, else its immediate subfolders."""
    runs: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise DataError(f"--models {folder}: no such directory; give a run directory or a folder of them.")
        found = [folder] if (folder / "config.json").is_file() else sorted(
            p for p in folder.iterdir() if (p / "config.json").is_file())
        runs.extend(p.resolve() for p in found if p.resolve() not in runs)
    return runs


def run_info(i: int, run: Path) -> dict[str, Any]:
    def read(name: str) -> str:
        p = run / name
        return p.read_text(encoding="utf-8", errors="replace") if p.is_file() else ""
    try:
        metrics = json.loads(read("results.json") or "{}")
    except ValueError:
        metrics = {}
    plots = sorted(p.name for p in (run / "plots").glob("*.png")) if (run / "plots").is_dir() else []
    return {"id": i, "name": run.name, "card": read("README.md"), "metrics": metrics, "plots": plots}


class App:
    """The server's state: opened indexes, runs, rendered items (cached)."""

    def __init__(self, indexes: list, models: list, max_upload: int):
        self.searchers = [Searcher(d) for d in indexes]
        self.names = [Path(d).resolve().name for d in indexes]
        local = [s.manifest["model"]["name"].split(":", 1)[1] for s in self.searchers
                 if (s.manifest["model"].get("name") or "").startswith("local-dir:")]
        self.runs = find_runs([*models, *[p for p in local if Path(p).is_dir()]])
        self.max_upload = max_upload
        self.lock = threading.Lock()
        self._datasets: dict[int, Any] = {}
        self.render = functools.lru_cache(maxsize=1024)(self._render)

    def searcher(self, i: int) -> Searcher:
        if not 0 <= i < len(self.searchers):
            raise NotFoundError(f"no index {i}; this server has {len(self.searchers)} (GET /api/indexes).")
        return self.searchers[i]

    def describe(self, i: int) -> dict[str, Any]:
        s = self.searchers[i]
        m = s.manifest
        return {"id": i, "name": self.names[i], "model": m["model"].get("name"), "dataset": m["dataset"]["name"],
                "split": m["dataset"]["split"], "count": m["count"],
                "fields": {f: spec["modality"] for f, spec in m["fields"].items()},
                "indexed": {f: {"factory": e["factory"], "recall@10": e["recall@10"]}
                            for f, e in m.get("indexes", {}).items()},
                "query_modalities": sorted({t.config.modality for t in s.model.towers.values()})}

    def _raw(self, i: int, field: str, row: int) -> Any:
        s = self.searcher(i)
        ds_spec = s.manifest["dataset"]
        if ds_spec["name"] is None:
            raise DataError("this index was embedded from an in-memory dataset; its raw items cannot be shown.")
        if i not in self._datasets:
            from zoo.data.datasets import create_dataset
            self._datasets[i] = create_dataset(ds_spec["name"], split=ds_spec["split"], **ds_spec["options"])
        return self._datasets[i][row][field]

    def _render(self, i: int, field: str, row: int) -> tuple[str, bytes]:
        s = self.searcher(i)
        if field not in s.fields:
            raise NotFoundError(f"index {i} has no field {field!r}; its fields are {list(s.fields)}.")
        if not 0 <= row < s.manifest["count"]:
            raise NotFoundError(f"row {row} is out of range (0…{s.manifest['count'] - 1}).")
        entry = registry().get("modalities", s.fields[field]["modality"])
        render = entry.factory.render
        if render is None:
            raise DataError(f"modality {entry.name!r} (plugin {entry.plugin!r}) has no render capability.")
        return render(self._raw(i, field, row))

    def search(self, i: int, modality: str, query: Any, k: int, field: str | None) -> dict[str, Any]:
        s = self.searcher(i)
        with self.lock:
            hits = s.search({modality: [query]}, k=k, field=field)[0]
            for h in hits:
                h["media"] = self.media(i, h["field"], h["row"])
        target = hits[0]["field"] if hits else field
        return {"index": i, "field": target, "modality": s.fields[target]["modality"] if target else None, "hits": hits}

    def media(self, i: int, field: str, row: int) -> dict[str, Any]:
        try:
            mime, data = self.render(i, field, row)
        except NotFoundError:
            raise
        except ZooError as exc:
            return {"error": str(exc)}
        if mime.startswith("text/"):
            return {"mime": mime, "text": data.decode("utf-8", errors="replace")}
        return {"mime": mime, "url": f"/api/item/{i}/{field}/{row}"}


def create_app(indexes: list[str | os.PathLike] = (), models: list[str | os.PathLike] = (),
               max_upload: int = 20 * 2**20):
    """The FastAPI application (``uvicorn`` serves it; tests use ``fastapi.testclient.TestClient``)."""
    _require()
    from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles

    state = App(list(indexes), list(models), max_upload)
    api = FastAPI(title="zoo search", docs_url="/api/docs", openapi_url="/api/openapi.json")
    api.state.zoo = state
    api.mount("/static", StaticFiles(directory=STATIC), name="static")

    @api.exception_handler(ZooError)
    async def _zoo_error(request: Request, exc: ZooError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @api.exception_handler(LookupError)
    async def _not_found(request: Request, exc: LookupError):
        return JSONResponse({"detail": str(exc.args[0] if exc.args else exc)}, status_code=404)

    @api.get("/", response_class=HTMLResponse)
    def page():
        return (STATIC / "index.html").read_text(encoding="utf-8")

    @api.get("/api/indexes")
    def list_indexes():
        return [state.describe(i) for i in range(len(state.searchers))]

    @api.get("/api/models")
    def list_models():
        return [run_info(i, r) for i, r in enumerate(state.runs)]

    @api.get("/api/models/{mid}/plots/{name}")
    def plot(mid: int, name: str):
        if not 0 <= mid < len(state.runs):
            raise HTTPException(404, f"no model {mid}; GET /api/models lists them.")
        listed = run_info(mid, state.runs[mid])["plots"]
        if name not in listed:  # only names from the server's own listing reach the filesystem
            raise HTTPException(404, f"model {mid} has no plot {name!r}; it has {listed}.")
        return FileResponse(state.runs[mid] / "plots" / listed[listed.index(name)], media_type="image/png")

    @api.get("/api/search")
    def search_get(q: str = Query(..., min_length=1, max_length=10_000), modality: str = Query(..., min_length=1),
                   index: int = 0, k: int = Query(10, ge=1, le=1000), field: str | None = None):
        return state.search(index, modality, q, k, field)

    @api.post("/api/search")
    async def search_post(request: Request, file: UploadFile = File(...), modality: str = Form(...),
                          index: int = Form(0), k: int = Form(10, ge=1, le=1000), field: str | None = Form(None)):
        size = int(request.headers.get("content-length") or 0)
        data = await file.read(state.max_upload + 1)
        if size > state.max_upload + 65536 or len(data) > state.max_upload:
            raise HTTPException(413, f"the upload is larger than the server's limit of {state.max_upload} bytes; "
                                     f"restart with a larger --max-upload-mb or send a smaller file.")
        if not data:
            raise HTTPException(400, "the uploaded file is empty.")
        suffix = Path(file.filename or "").suffix
        with tempfile.TemporaryDirectory(prefix="zoo-serve-") as tmp:
            path = Path(tmp) / ("query" + (suffix if SUFFIX.match(suffix) else ""))
            path.write_bytes(data)
            return state.search(index, modality, path, k, field or None)

    @api.get("/api/item/{iid}/{field}/{row}")
    def item(iid: int, field: str, row: int):
        mime, data = state.render(iid, field, row)
        return Response(data, media_type=mime, headers={"Cache-Control": "max-age=3600"})

    return api


def serve(indexes: list[str | os.PathLike] = (), models: list[str | os.PathLike] = (), host: str = "127.0.0.1",
          port: int = 8000, max_upload: int = 20 * 2**20, announce=log.info) -> None:
    """Serve the page until interrupted (``zoo serve``). ``announce(line)`` tells where, once the indexes are open
    (the CLI passes ``print``; a library caller gets a log line)."""
    app = create_app(indexes, models, max_upload)
    import uvicorn
    announce(f"zoo serve: http://{host}:{port}/  ({len(indexes)} index(es); Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
