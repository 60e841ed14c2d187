"""zoo embed / index / search on the core's vector modality: layout, resume, torchrun, recall, bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import zoo
from zoo.data.datasets import ZooDataset
from zoo.retrieval import index, search, store
from zoo.retrieval.search import Searcher

embed_mod = sys.modules["zoo.retrieval.embed"]  # the module (zoo.retrieval.embed the name is the function)
OPTS = {"size": 600, "dim": 16, "classes": 8}


def _embed(model, out, **kw):
    kw = {"split": "train", "dataset_options": OPTS, "shard_size": 64, "batch_size": 16, "progress": False, **kw}
    return zoo.retrieval.embed(model, "synthetic-pairs", out, **kw)


def _field(out, field):
    m = store.read_manifest(out)
    return np.concatenate(list(store.iter_field(out, m, field)))


def test_embed_writes_shards_ids_labels_and_a_manifest(tmp_path, tiny_model):
    m = _embed(tiny_model, tmp_path / "e")
    ds = zoo.create_dataset("synthetic-pairs", split="train", **OPTS)
    assert m["complete"] and m["count"] == len(ds) and m["dim"] == 8 and m["dtype"] == "float32"
    assert m["num_shards"] == -(-len(ds) // 64) and set(m["fields"]) == {"x", "y"}
    assert m["model"]["sha256"] == store.model_hash(tiny_model) and m["dataset"]["name"] == "synthetic-pairs"
    ref = zoo.evaluation.embed.embed_dataset(tiny_model, ds, batch_size=16)  # the in-memory embedding of the same split
    for f in ("x", "y"):
        torch.testing.assert_close(torch.from_numpy(_field(tmp_path / "e", f)), ref.emb[f], atol=1e-6, rtol=0)
    meta = store.read_meta(tmp_path / "e", m)
    assert [r["row"] for r in meta] == list(range(len(ds)))
    assert [r["labels"]["class"] for r in meta] == ref.labels["class"].tolist()
    half = _embed(tiny_model, tmp_path / "h", dtype="float16", fields=["x"])
    assert list(half["fields"]) == ["x"] and np.load(tmp_path / "h/shards/x-00000.npy").dtype == np.float16


def test_embed_resumes_at_the_last_finished_shard(tmp_path, tiny_model, monkeypatch):
    calls = {"n": 0}
    real = embed_mod._encode_raw

    def flaky(model, tower, items):
        calls["n"] += 1
        if calls["n"] == 9:  # 2 fields × 4 batches per shard: dies inside the second shard
            raise KeyboardInterrupt
        return real(model, tower, items)

    monkeypatch.setattr(embed_mod, "_encode_raw", flaky)
    with pytest.raises(KeyboardInterrupt):
        _embed(tiny_model, tmp_path / "e")
    assert sorted(p.name for p in (tmp_path / "e/shards").glob("*.done")) == ["00000.done"]
    with pytest.raises(zoo.DataError, match="resumes at the last finished shard"):
        store.read_manifest(tmp_path / "e")
    calls["n"] = -10**9  # no more failures; count what the resumed run encodes
    m = _embed(tiny_model, tmp_path / "e")
    rows = [min(64, m["count"] - s * 64) for s in range(1, m["num_shards"])]  # shards 1… only
    assert calls["n"] + 10**9 == 2 * sum(-(-r // 16) for r in rows)
    _embed(tiny_model, tmp_path / "ref")
    for name in sorted(os.listdir(tmp_path / "ref/shards")):
        assert (tmp_path / "e/shards" / name).read_bytes() == (tmp_path / "ref/shards" / name).read_bytes(), name


@pytest.mark.slow
def test_torchrun_ranks_share_the_shards_and_equal_one_process(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path / "model")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "zoo.cli",
           "embed", str(tmp_path / "model"), "--dataset", "synthetic-pairs", "--split", "train", "--options",
           json.dumps(OPTS), "--out", str(tmp_path / "ddp"), "--shard-size", "64", "--batch-size", "16", "--no-progress"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    one = _embed(str(tmp_path / "model"), tmp_path / "one")
    # only rank 0 prints; it embedded its share (every other shard), not the whole corpus
    share = sum(min(64, one["count"] - s * 64) for s in range(0, one["num_shards"], 2))
    assert f"embedded {share} items" in out.stderr and "(rank 0 of 2)" in out.stderr and share < one["count"]
    assert "rank 1 of 2" not in out.stderr
    assert json.loads((tmp_path / "ddp/manifest.json").read_text()) == one
    names = sorted(os.listdir(tmp_path / "one/shards"))
    assert names == sorted(os.listdir(tmp_path / "ddp/shards"))
    for name in names:
        assert (tmp_path / "ddp/shards" / name).read_bytes() == (tmp_path / "one/shards" / name).read_bytes(), name


def _exact(q, x, k):
    return np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]


def test_flat_search_is_exact_and_approximate_indexes_report_their_measured_recall(tmp_path, tiny_model):
    out = tmp_path / "e"
    _embed(tiny_model, out, dataset_options={**OPTS, "size": 5000}, shard_size=1000, batch_size=500)
    x, y = _field(out, "x"), _field(out, "y")
    m = index(out)
    assert m["indexes"]["x"]["factory"] == "Flat" and m["indexes"]["x"]["recall@10"] == 1.0
    ds = zoo.create_dataset("synthetic-pairs", split="train", **{**OPTS, "size": 5000})
    hits = search(out, "x", ds[7]["x"], k=10, field="y", model=tiny_model)
    assert [h["row"] for h in hits] == _exact(x[7:8], y, 10)[0].tolist()
    assert hits[0]["score"] == pytest.approx(float(x[7] @ y[hits[0]["row"]]), abs=1e-5)
    import faiss
    for kind, param in (("ivf", "nprobe"), ("hnsw", "efSearch")):
        e = index(out, kind=kind, fields=["y"], sample=300)["indexes"]["y"]
        assert e["factory"] != "Flat" and e["params"].startswith(param) and e["recall@10"] >= 0.95
        idx = faiss.read_index(str(out / e["file"]))
        faiss.ParameterSpace().set_index_parameters(idx, e["params"])
        q = y[np.random.default_rng(1).choice(len(y), 200, replace=False)]
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx.search(q, 10)[1], _exact(q, y, 10))])
        assert abs(recall - e["recall@10"]) < 0.05, (kind, recall, e)  # the manifest's recall is what one gets


class ThreeViews(ZooDataset):
    fields = {"a": "vector", "b": "vector", "c": "vector"}
    label_fields = ["class"]

    def __init__(self, n=300):
        g = torch.Generator().manual_seed(0)
        self.v = torch.randn(3, n, 16, generator=g)

    def __len__(self):
        return self.v.shape[1]

    def __getitem__(self, i):
        return {"a": self.v[0, i], "b": self.v[1, i], "c": self.v[2, i], "class": i % 3}


def test_a_two_modality_query_is_answered_by_the_multilinear_inner_product(tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model({k: {"modality": "vector", "encoder": "mlp", "in_dim": 16} for k in "abc"}, embed_dim=8)
    ds = ThreeViews()
    embed_mod.embed(model, ds, tmp_path / "e", shard_size=100, progress=False)
    index(tmp_path / "e")
    hits = search(tmp_path / "e", {"a": ds[5]["a"], "b": ds[9]["b"]}, k=5, model=model)
    assert {h["field"] for h in hits} == {"c"}
    with torch.no_grad():
        za, zb = (model.encode(t, model.preprocess(t, [ds[i][t]])) for t, i in (("a", 5), ("b", 9)))
        zc = model.encode("c", model.preprocess("c", [ds[i]["c"] for i in range(len(ds))]))
    score = (za * zb * zc).sum(-1)  # Σ_d a_d·b_d·c_d, (N,)
    assert [h["row"] for h in hits] == score.argsort(descending=True)[:5].tolist()
    assert hits[0]["score"] == pytest.approx(score.max().item(), abs=1e-5)
    two = zoo.create_model({k: {"modality": "vector", "encoder": "mlp", "in_dim": 16} for k in "ab"}, embed_dim=8)
    embed_mod.embed(two, ds, tmp_path / "two", progress=False)
    index(tmp_path / "two")
    with pytest.raises(zoo.DataError, match="three or more towers"):
        search(tmp_path / "two", {"a": ds[0]["a"], "b": ds[0]["b"]}, model=two)


def test_bad_input_is_a_zoo_error_naming_the_fix(tmp_path, tiny_model):
    out = tmp_path / "e"
    _embed(tiny_model, out)
    index(out)
    q = torch.zeros(16)
    with pytest.raises(zoo.UnknownNameError, match="query with one of those"):
        search(out, "image", "seven.png", model=tiny_model)  # a modality this index's model has no tower for
    other = zoo.create_model({"x": {"modality": "vector", "encoder": "mlp", "in_dim": 16}}, embed_dim=8)
    with pytest.raises(zoo.CheckpointError, match="re-embed with this one"):
        search(out, "x", q, model=other)
    with pytest.raises(zoo.DataError, match="different model.sha256"):
        _embed(other, out)  # resuming into a directory made by another model
    (out / "shards/y-00002.npy").unlink()
    with pytest.raises(zoo.DataError, match="shard 2 .* missing or corrupt.*Re-run the same `zoo embed`"):
        Searcher(out, model=tiny_model)
    _embed(tiny_model, out)  # the fix the message names: re-embeds the broken shard only
    raw = bytearray((out / "shards/x-00001.npy").read_bytes())
    raw[-3] ^= 0xFF
    (out / "shards/x-00001.npy").write_bytes(bytes(raw))
    with pytest.raises(zoo.DataError, match="shard 1 .* missing or corrupt"):
        index(out)
    _embed(tiny_model, out)
    with pytest.raises(zoo.DataError, match="no index yet; build it with `zoo index"):
        search(out, "x", q, model=tiny_model)  # re-embedded shards make the old index stale
    index(out)
    assert search(out, "x", q, model=tiny_model)

    class Empty(ThreeViews):
        def __len__(self):
            return 0
    with pytest.raises(zoo.DataError, match="empty: nothing to embed"):
        embed_mod.embed(tiny_model, Empty(), tmp_path / "empty", progress=False)
    with pytest.raises(zoo.DataError, match="not an embedding directory"):
        index(tmp_path / "nowhere")
