"""The on-disk layout of an embedding directory (written by ``zoo embed``, read by index/search/serve).

    DIR/manifest.json              model (name, sha256 of its weights), dataset, split, fields, count, dim,
                                   dtype, shard size, "complete"; ``zoo index`` adds "indexes"
    DIR/shards/<field>-00000.npy   (n_shard, dim) float32 or float16, L2-normalised rows
    DIR/shards/meta-00000.jsonl    one line per row: {"row", "id", "labels", "pointer"}
    DIR/shards/00000.done          written last: rows and the sha256 of each file of the shard
    DIR/index/<field>.faiss        the FAISS index of one field (``zoo index``)

A shard counts only when its ``.done`` file exists and every file it lists has that checksum.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from zoo.errors import DataError
from zoo.files import atomic_write_bytes, atomic_write_text, sha256_file

MANIFEST = "manifest.json"
FORMAT = 1


def model_hash(model) -> str:
    """sha256 over the model's weights (names, dtypes, shapes, bytes), in name order."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_name(spec: str) -> str:
    """A CLI ``MODEL`` (a run directory or a catalog name) → the catalog name ``zoo.load`` takes."""
    if os.path.isdir(spec):
        return f"local-dir:{os.path.abspath(spec)}"
    return spec


def load_model(spec):
    """A model object, a run directory or a catalog name → ``(model, catalog name or None)``."""
    if not isinstance(spec, (str, os.PathLike)):
        return spec, getattr(spec, "zoo_name", None)
    from zoo.hub.catalog import load
    name = model_name(os.fspath(spec))
    return load(name), name


def shard_files(out: Path, shard: int, fields: list[str]) -> dict[str, Path]:
    d = out / "shards"
    return {**{f: d / f"{f}-{shard:05d}.npy" for f in fields}, "meta": d / f"meta-{shard:05d}.jsonl"}


def done_path(out: Path, shard: int) -> Path:
    return out / "shards" / f"{shard:05d}.done"


def write_npy(path: Path, array: np.ndarray) -> None:
    import io
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def shard_ok(out: Path, shard: int) -> bool:
    """The shard's ``.done`` exists and every file it lists is there with its checksum."""
    try:
        done = json.loads(done_path(out, shard).read_text())
        return all(sha256_file(out / "shards" / name) == digest for name, digest in done["files"].items())
    except (OSError, ValueError, KeyError):
        return False


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_manifest(out: str | os.PathLike) -> dict[str, Any]:
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise DataError(f"{out} holds no {MANIFEST}: it is not an embedding directory. Make one with "
                        f"`zoo embed MODEL --dataset NAME --out {out}`.")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); re-run `zoo embed` with --out {out}.") from exc
    if not manifest.get("complete"):
        raise DataError(f"the embedding of {out} is not finished ({manifest.get('shards_done', 0)} of "
                        f"{manifest.get('num_shards', '?')} shards); re-run the same `zoo embed` command: it "
                        f"resumes at the last finished shard.")
    return manifest


def write_manifest(out: str | os.PathLike, manifest: dict[str, Any]) -> None:
    write_json(Path(out) / MANIFEST, manifest)


def _check_shard(out: Path, shard: int) -> None:
    if not shard_ok(out, shard):
        raise DataError(f"shard {shard} of {out} is missing or corrupt (its files do not match the checksums in "
                        f"{done_path(out, shard).name}). Re-run the same `zoo embed` command (it re-embeds only "
                        f"the broken shards), then `zoo index {out}` again.")


def iter_field(out: str | os.PathLike, manifest: dict[str, Any], field: str,
               verify: bool = True) -> Iterator[np.ndarray]:
    """The ``(n_shard, dim)`` float32 arrays of one field, shard by shard (checksums verified)."""
    out = Path(out)
    for s in range(manifest["num_shards"]):
        if verify:
            _check_shard(out, s)
        yield np.load(shard_files(out, s, [field])[field], allow_pickle=False).astype(np.float32, copy=False)


def read_meta(out: str | os.PathLike, manifest: dict[str, Any], verify: bool = True) -> list[dict[str, Any]]:
    """Every row's ``{"row", "id", "labels", "pointer"}``, in row order."""
    out, rows = Path(out), []
    for s in range(manifest["num_shards"]):
        if verify:
            _check_shard(out, s)
        with open(shard_files(out, s, [])["meta"], encoding="utf-8") as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    return rows
