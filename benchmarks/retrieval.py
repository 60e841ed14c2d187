"""Retrieval at scale (printed, not asserted):

1. ``zoo embed`` throughput vs a hand-written ``DataLoader`` + ``encode`` loop (same model, data, batch);
2. ``zoo index`` build time, query latency and recall@10 vs exact at 10⁵ and 10⁶ random 256-d vectors;
3. peak memory of ``zoo embed`` at 10⁴ and 10⁵ items (a fresh process each; the data is generated per item).

    PYTHONPATH=.:plugins python benchmarks/retrieval.py [--skip-1m] [--out /tmp/zoo-bench-retrieval]
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

import zoo
from zoo.data import ZooDataset
from zoo.retrieval import embed, index, store


class LazyPairs(ZooDataset):
    """``n`` items of two 64-d vector fields generated from the row number (nothing held in memory)."""

    fields = {"x": "vector", "y": "vector"}
    label_fields = ["class"]

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = np.random.default_rng(i)
        return {"x": torch.from_numpy(g.standard_normal(64, dtype=np.float32)),
                "y": torch.from_numpy(g.standard_normal(64, dtype=np.float32)), "class": i % 10}


def make_model():
    torch.manual_seed(0)
    tower = {"modality": "vector", "encoder": "mlp", "in_dim": 64, "hidden": 512, "out_dim": 256, "layers": 3}
    return zoo.create_model({"x": tower, "y": dict(tower)}, embed_dim=256).eval()


def hand_loop(model, ds, batch: int) -> None:
    """The baseline: what one would write by hand (no files, no ids, no resume)."""
    out = {"x": [], "y": []}
    with torch.no_grad():
        for items in DataLoader(ds, batch_size=batch, collate_fn=list):
            for f in out:
                out[f].append(model.encode(f, model.preprocess(f, [it[f] for it in items])).numpy())
    return {f: np.concatenate(v) for f, v in out.items()}


def bench_embed(tmp: Path, n: int = 20_000, batch: int = 512, repeats: int = 3) -> None:
    model, ds = make_model(), LazyPairs(n)
    hand, zoo_t = [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        hand_loop(model, ds, batch)
        hand.append(time.perf_counter() - t0)
        shutil.rmtree(tmp / "emb", ignore_errors=True)
        t0 = time.perf_counter()
        embed(model, ds, tmp / "emb", batch_size=batch, shard_size=8192, progress=False)
        zoo_t.append(time.perf_counter() - t0)
    h, z = min(hand), min(zoo_t)
    print(f"embed {n} items × 2 fields, batch {batch}: hand-written loop {n / h:,.0f} items/s, zoo embed "
          f"{n / z:,.0f} items/s (files, ids, checksums, manifest) → overhead {100 * (z / h - 1):+.1f} % "
          f"(best of {repeats})")


def memory_child(n: int, out: str) -> None:
    embed(make_model(), LazyPairs(n), out, batch_size=512, shard_size=8192, progress=False)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def bench_memory(tmp: Path) -> None:
    for n in (10_000, 100_000):
        shutil.rmtree(tmp / f"mem{n}", ignore_errors=True)
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, __file__, "--memory-child", str(n), str(tmp / f"mem{n}")],
                             capture_output=True, text=True, check=True)
        kb = int(res.stdout.split()[-1])
        size = sum(p.stat().st_size for p in (tmp / f"mem{n}").rglob("*"))
        print(f"zoo embed of {n:>7,} items: peak RSS {kb / 1024:,.0f} MiB, wrote {size / 2**20:,.0f} MiB, "
              f"{time.perf_counter() - t0:.0f} s")


def write_vectors(out: Path, x: np.ndarray, shard: int = 100_000) -> None:
    """Random vectors laid out as a ``zoo embed`` directory (one field ``v``)."""
    shutil.rmtree(out, ignore_errors=True)
    (out / "shards").mkdir(parents=True)
    n, d = x.shape
    num = -(-n // shard)
    for s in range(num):
        files = store.shard_files(out, s, ["v"])
        store.write_npy(files["v"], x[s * shard:(s + 1) * shard])
        rows = range(s * shard, min(n, (s + 1) * shard))
        files["meta"].write_text("".join(f'{{"row": {r}, "id": "{r}", "labels": {{}}, "pointer": {{"row": {r}}}}}\n'
                                         for r in rows))
        store.write_json(store.done_path(out, s), {"rows": [rows.start, rows.stop],
                                                   "files": {p.name: store.sha256_file(p) for p in files.values()}})
    store.write_manifest(out, {"format": 1, "complete": True, "model": {"name": None, "sha256": ""},
                               "dataset": {"name": None, "split": "", "options": {}}, "fields": {"v": {}},
                               "count": n, "dim": d, "dtype": "float32", "shard_size": shard, "num_shards": num})


def bench_index(tmp: Path, n: int, kinds: list[str], d: int = 256) -> None:
    import faiss
    x = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    out = tmp / f"idx{n}"
    write_vectors(out, x)
    q = np.random.default_rng(1).standard_normal((1000, d), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    for kind in kinds:
        t0 = time.perf_counter()
        e = index(out, kind=kind, sample=500)["indexes"]["v"]
        total = time.perf_counter() - t0
        idx = faiss.read_index(str(out / e["file"]))
        if e["params"]:
            faiss.ParameterSpace().set_index_parameters(idx, e["params"])
        t0 = time.perf_counter()
        idx.search(q, 10)
        batch_ms = (time.perf_counter() - t0) * 1000 / len(q)
        t0 = time.perf_counter()
        for i in range(50):
            idx.search(q[i:i + 1], 10)
        one_ms = (time.perf_counter() - t0) * 1000 / 50
        print(f"{n:>9,} × {d}: {e['factory']:<14} build {e['build_s']:7.1f} s (+ {total - e['build_s']:5.1f} s recall/tuning/write) "
              f"recall@10 {e['recall@10']:.3f} {e['params'] or '(exact)':<14} query {one_ms:7.2f} ms alone, "
              f"{batch_ms:6.3f} ms/query in a batch of 1000")
        if e.get("tuning"):
            print(f"{'':>16}recall@10 by {', '.join(f'{p}={v}: {r:.3f}' for p, t in e['tuning'].items() for v, r in t)}")
    del x
    shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="/tmp/zoo-bench-retrieval")
    p.add_argument("--skip-1m", action="store_true")
    p.add_argument("--memory-child", nargs=2)
    args = p.parse_args()
    if args.memory_child:
        return memory_child(int(args.memory_child[0]), args.memory_child[1])
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(args.out)
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"torch threads {torch.get_num_threads()}")
    bench_embed(tmp)
    bench_memory(tmp)
    bench_index(tmp, 100_000, ["flat", "ivf", "hnsw"])
    if not args.skip_1m:
        bench_index(tmp, 1_000_000, ["flat", "ivf"])
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
