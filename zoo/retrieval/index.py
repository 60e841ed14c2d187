"""``zoo index``: a FAISS index per embedded field, next to the embeddings.

Kinds are FAISS factory strings (``faiss.index_factory``; autofaiss is not used):

- ``flat`` → ``"Flat"``: exact; the default below :data:`EXACT_BELOW` vectors.
- ``ivf``  → ``"IVF{nlist},Flat"`` with ``nlist ≈ √n`` (a power of two, ≥ 39 training points per list),
  trained on a sample of at most ``64·nlist`` vectors (k-means stays seconds at 10⁶ vectors on 2 cores);
  the default from :data:`EXACT_BELOW` up.
- ``hnsw`` → ``"HNSW32"`` (no training, more memory, fast queries).

For an approximate index the query-time parameter (``nprobe`` / ``efSearch``) is the smallest of a
doubling ladder whose recall@10 against exact search reaches ``target_recall`` on a held-out sample
(corpus rows used as queries, each not counting as its own neighbour); the recall reached, the
parameter and the build time go into the manifest under ``"indexes"``.
"""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from zoo.checks import require
from zoo.errors import UnknownNameError
from zoo.retrieval import store

log = logging.getLogger(__name__)
KINDS = ("auto", "flat", "ivf", "hnsw")
METRICS = ("ip", "l2")
EXACT_BELOW = 100_000


def faiss():
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which SIMD build loaded: noise
    return require("faiss", "search", "`zoo index`", package="faiss-cpu")


def factory_string(kind: str, n: int) -> str:
    """The ``faiss.index_factory`` string for ``kind`` and a corpus of ``n`` vectors."""
    if kind == "auto":
        kind = "flat" if n < EXACT_BELOW else "ivf"
    if kind == "flat":
        return "Flat"
    if kind == "ivf":
        nlist = 2 ** max(0, round(math.log2(max(1.0, math.sqrt(n)))))
        while nlist > 1 and nlist * 39 > n:
            nlist //= 2
        return f"IVF{nlist},Flat"
    if kind == "hnsw":
        return "HNSW32"
    raise UnknownNameError("index kind", kind, KINDS)


def _ladder(factory: str) -> tuple[str, list[int]]:
    if factory.startswith("IVF"):
        nlist = int(factory[3:].split(",")[0])
        return "nprobe", [p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048) if p < nlist] + [nlist]
    if factory.startswith("HNSW"):
        return "efSearch", [16, 32, 64, 128, 256, 512, 1024]
    return "", []


def exact_topk(out: Path, manifest: dict, field: str, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Exact ``(q, k)`` neighbour rows of ``queries``, streaming over the shards (flat memory)."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    start = 0
    for x in store.iter_field(out, manifest, field, verify=False):  # (n_shard, D)
        s = queries @ x.T if metric == "ip" else -(  # (q, n_shard), larger is nearer
            (queries ** 2).sum(1, keepdims=True) - 2 * queries @ x.T + (x ** 2).sum(1)[None])
        idx = np.arange(start, start + len(x))[None].repeat(len(queries), 0)
        all_s, all_i = np.concatenate([best_s, s], 1), np.concatenate([best_i, idx], 1)
        top = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
        start += len(x)
    return best_i


def recall_at(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx.tolist(), exact.tolist())]))


def _drop_self(ids: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    return np.stack([[i for i in r if i != q][:k] for r, q in zip(ids.tolist(), rows.tolist())])


def build_index(out: Path, manifest: dict, field: str, kind: str = "auto", metric: str = "ip",
                sample: int = 1000, target_recall: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Build, tune and write ``out/index/<field>.faiss``; returns its manifest entry."""
    fa = faiss()
    n, d = manifest["count"], manifest["dim"]
    factory = factory_string(kind, n)
    t0 = time.perf_counter()
    index = fa.index_factory(d, factory, fa.METRIC_INNER_PRODUCT if metric == "ip" else fa.METRIC_L2)
    rng = np.random.default_rng(seed)
    if not index.is_trained:
        nlist = int(factory[3:].split(",")[0])
        take = np.sort(rng.choice(n, size=min(n, 64 * nlist), replace=False))
        index.train(_rows(out, manifest, field, take))
    for x in store.iter_field(out, manifest, field):
        index.add(np.ascontiguousarray(x))
    build_s = time.perf_counter() - t0
    entry: dict[str, Any] = {"kind": kind, "factory": factory, "metric": metric, "count": n,
                             "file": f"index/{field}.faiss", "build_s": round(build_s, 3)}
    param, ladder = _ladder(factory)
    if not ladder:
        entry.update({"recall@10": 1.0, "exact": True, "params": ""})
    else:
        rows = np.sort(rng.choice(n, size=min(n, sample), replace=False))
        queries = _rows(out, manifest, field, rows)
        k = min(10, n - 1)
        truth = _drop_self(exact_topk(out, manifest, field, queries, k + 1, metric), rows, k)
        ps, tried = fa.ParameterSpace(), []
        for value in ladder:
            ps.set_index_parameters(index, f"{param}={value}")
            _, got = index.search(queries, k + 1)
            rec = recall_at(_drop_self(got, rows, k), truth)
            tried.append([value, round(rec, 4)])
            if rec >= target_recall:
                break
        entry.update({"recall@10": round(rec, 4), "exact": False, "params": f"{param}={value}",
                      "recall_queries": len(rows), "target_recall": target_recall, "tuning": {param: tried}})
    (out / "index").mkdir(exist_ok=True)
    fa.write_index(index, os.fspath(out / entry["file"]))
    log.info("index %s/%s: %s, %d vectors, built in %.1f s, recall@10 %.3f %s", out.name, field, factory, n,
             build_s, entry["recall@10"], entry["params"])
    return entry


def _rows(out: Path, manifest: dict, field: str, rows: np.ndarray) -> np.ndarray:
    """The vectors of sorted ``rows``, read shard by shard: ``(len(rows), D)`` float32."""
    size, parts = manifest["shard_size"], []
    for s, x in enumerate(store.iter_field(out, manifest, field, verify=False)):
        mine = rows[(rows >= s * size) & (rows < (s + 1) * size)] - s * size
        parts.append(x[mine])
    return np.ascontiguousarray(np.concatenate(parts))


def index(out: str | os.PathLike, *, kind: str = "auto", metric: str = "ip", fields: list[str] | None = None,
          sample: int = 1000, target_recall: float = 0.95) -> dict[str, Any]:
    """Build a FAISS index for each (or the given) field of the embeddings in ``out``; returns the manifest."""
    if kind not in KINDS:
        raise UnknownNameError("index kind", kind, KINDS)
    if metric not in METRICS:
        raise UnknownNameError("metric", metric, METRICS)
    out = Path(out)
    manifest = store.read_manifest(out)
    for f in fields or list(manifest["fields"]):
        if f not in manifest["fields"]:
            raise UnknownNameError("embedded field", f, manifest["fields"],
                                   hint=f"{out} holds the fields {list(manifest['fields'])}.")
        manifest.setdefault("indexes", {})[f] = build_index(out, manifest, f, kind, metric, sample, target_recall)
    store.write_manifest(out, manifest)
    return manifest
