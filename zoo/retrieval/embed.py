"""``zoo embed``: every embeddable field of a dataset split → sharded arrays + ids/labels/pointers + manifest.

It streams (one shard in memory at a time), resumes at the last finished shard, and under
``torchrun`` rank ``r`` embeds shards ``r, r + world, …``: a shard's rows, batches and therefore
its bytes do not depend on which process embedded it, so the result equals one process's.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from zoo import __version__
from zoo.errors import DataError
from zoo.evaluation.embed import embeddable_fields
from zoo.files import atomic_write_text
from zoo.retrieval import store

log = logging.getLogger(__name__)
DTYPES = ("float32", "float16")


def _encode_raw(model, tower: str, items: list[Any]) -> torch.Tensor:
    """Raw items → ``(B, D)`` L2-normalised embeddings (the one place retrieval encodes)."""
    return model.encode(tower, items, batch_size=max(1, len(items)))  # no autograd, length-sorted, order kept


def _as_list(items: list[dict]) -> list[dict]:
    return items


def _pointer(row: int, item: dict, fields: list[str]) -> dict[str, Any]:
    """Where the raw item lives: its row in the split, and the file when a field is a path on disk."""
    ptr: dict[str, Any] = {"row": row}
    for f in fields:
        v = item.get(f)
        if isinstance(v, (str, os.PathLike)) and len(os.fspath(v)) < 4096 and os.path.isfile(v):
            ptr[f] = os.path.abspath(v)
    return ptr


def _item_id(dataset, row: int) -> str:
    ids = getattr(dataset, "ids", None)
    return str(ids[row]) if ids is not None else str(row)


def embed(model, dataset, out: str | os.PathLike, *, split: str = "test", fields: list[str] | None = None,
          batch_size: int = 256, shard_size: int = 8192, dtype: str = "float32",
          dataset_options: dict | None = None, num_workers: int = 0, progress: bool = True) -> dict[str, Any]:
    """Embed ``dataset`` (a registered name, or a Dataset) with ``model`` (a model, a run directory or a
    catalog name) into ``out``; returns the manifest. Safe to re-run: finished shards are kept."""
    from zoo.data.datasets import create_dataset
    from zoo.training.distributed import barrier, init_distributed, shutdown
    if dtype not in DTYPES:
        raise DataError(f"dtype {dtype!r} is not supported; use one of {DTYPES}.")
    if batch_size < 1 or shard_size < 1:
        raise DataError(f"batch_size ({batch_size}) and shard_size ({shard_size}) must be ≥ 1.")
    model, name = store.load_model(model)
    model.eval()
    ds_name = dataset if isinstance(dataset, str) else getattr(dataset, "name", None)
    ds = create_dataset(dataset, split=split, **(dataset_options or {})) if isinstance(dataset, str) else dataset
    n = len(ds)
    if n == 0:
        raise DataError(f"dataset {ds_name or type(ds).__name__} split {split!r} is empty: nothing to embed. "
                        f"Check the split name and the dataset options.")
    towers = embeddable_fields(model, ds, fields)  # {field: tower}
    out = Path(out)
    manifest = {
        "format": store.FORMAT, "zoo_version": __version__, "complete": False,
        "model": {"name": name, "sha256": store.model_hash(model), "embed_dim": model.embed_dim,
                  "towers": {k: t.config.modality for k, t in model.towers.items()}},
        "dataset": {"name": ds_name, "split": split, "options": dataset_options or {},
                    "label_fields": list(getattr(ds, "label_fields", []) or []),
                    "class_names": getattr(ds, "class_names", None)},
        "fields": {f: {"modality": ds.fields[f], "tower": t} for f, t in towers.items()},
        "count": n, "dim": model.embed_dim, "dtype": dtype, "shard_size": shard_size,
        "num_shards": (n + shard_size - 1) // shard_size,
    }
    old = _check_resumable(out, manifest)
    if old and old.get("complete") and all(store.shard_ok(out, s) for s in range(old["num_shards"])):
        log.info("%s already holds these embeddings, every shard intact: nothing to do", out)
        return old  # (keeps its indexes)
    dist = init_distributed("cpu")
    try:
        if dist.main:
            (out / "shards").mkdir(parents=True, exist_ok=True)
            store.write_manifest(out, manifest)
        barrier(dist)
        mine = [s for s in range(manifest["num_shards"]) if s % dist.world == dist.rank]
        todo = [s for s in mine if not store.shard_ok(out, s)]
        if len(todo) < len(mine):
            log.info("resuming: %d of this process's %d shards are already embedded", len(mine) - len(todo), len(mine))
        rows_todo = sum(min(n, (s + 1) * shard_size) - s * shard_size for s in todo)
        bar = tqdm(total=rows_todo, disable=not progress or not dist.main, desc=f"embedding {out.name}", unit="item")
        t0, done_rows = time.perf_counter(), 0
        for s in todo:
            rows = range(s * shard_size, min(n, (s + 1) * shard_size))
            _embed_shard(model, ds, towers, out, s, rows, batch_size, dtype, num_workers, bar)
            done_rows += len(rows)
        bar.close()
        dt = time.perf_counter() - t0
        if done_rows:
            log.info("embedded %d items in %.1f s: %.1f samples/s (rank %d of %d)", done_rows, dt,
                     done_rows / max(dt, 1e-9), dist.rank, dist.world)
        barrier(dist)
        if dist.main:
            missing = [s for s in range(manifest["num_shards"]) if not store.shard_ok(out, s)]
            if missing:
                raise DataError(f"shards {missing[:10]} of {out} are not finished; re-run the same command.")
            manifest.update(complete=True, shards_done=manifest["num_shards"])
            store.write_manifest(out, manifest)
        barrier(dist)
    finally:
        shutdown(dist)
    return manifest


def _check_resumable(out: Path, new: dict[str, Any]) -> dict[str, Any] | None:
    """The existing manifest, if any; a directory resumes only for the same model weights, dataset, split,
    fields and layout."""
    path = out / store.MANIFEST
    if not path.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise DataError(f"{out} exists, is not empty and holds no {store.MANIFEST}; choose a new --out.")
        return None
    old = json.loads(path.read_text())
    keys = {"model.sha256": lambda m: m["model"]["sha256"], "dataset": lambda m: {k: m["dataset"][k] for k in ("name", "split", "options")},
            "fields": lambda m: m["fields"], "count": lambda m: m["count"], "dtype": lambda m: m["dtype"],
            "shard_size": lambda m: m["shard_size"]}
    diff = [k for k, get in keys.items() if _safe(get, old) != _safe(get, new)]
    if diff:
        raise DataError(f"{out} already holds embeddings made with a different {', '.join(diff)}; resuming would "
                        f"mix them. Choose a new --out, or delete {out} to start over.")
    return old


def _safe(get, m):
    try:
        return get(m)
    except (KeyError, TypeError):
        return None


def _embed_shard(model, ds, towers: dict[str, str], out: Path, shard: int, rows: range, batch_size: int,
                 dtype: str, num_workers: int, bar) -> None:
    chunks: dict[str, list[np.ndarray]] = {f: [] for f in towers}
    label_fields = list(getattr(ds, "label_fields", []) or [])
    meta: list[str] = []
    loader = DataLoader(Subset(ds, rows), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_as_list)
    row = rows.start
    for items in loader:
        for f, tower in towers.items():
            z = _encode_raw(model, tower, [it[f] for it in items])  # (B, D)
            chunks[f].append(z.float().cpu().numpy().astype(dtype, copy=False))
        for it in items:
            labels = {lv: int(it[lv]) for lv in label_fields if lv in it}
            meta.append(json.dumps({"row": row, "id": _item_id(ds, row), "labels": labels,
                                    "pointer": _pointer(row, it, list(towers))}))
            row += 1
        bar.update(len(items))
    files = store.shard_files(out, shard, list(towers))
    for f in towers:
        store.write_npy(files[f], np.concatenate(chunks[f]))  # (n_shard, D)
    atomic_write_text(files["meta"], "\n".join(meta) + "\n")
    digests = {p.name: store.sha256_file(p) for p in files.values()}
    store.write_json(store.done_path(out, shard), {"rows": [rows.start, rows.stop], "files": digests})
