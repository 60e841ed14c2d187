"""Every registered dataset: contract attributes, both splits offline, raw forms, fixed disjoint splits.

Plus values checked by hand against the files the pip packages ship.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from helpers import logged_losses

import zoo
from zoo.errors import DataError
from zoo_data import speech

# Small option sizes so the whole file stays fast; datasets not listed are built with defaults.
SMALL = {
    "digits": {"size": 64},
    "pydoc-topics": {"size": 64},
    "synthetic-graphs": {"size": 60},
    "molecules-nci5k": {"size": 64},
    "chembl-2321810": {"size": 64},
    "molecule-captions": {"size": 64},
    "tones-captions": {"size": 45},
    "digits-trimodal": {"size": 32, "audio": "tones"},
    "moving-digits": {"size": 32},
    "binary-xor": {"size": 200},
}
GENERIC = {"webdataset", "hf-datasets", "csv", "folder"}   # need files: tested below / in test_own_data.py


def registered():
    return [n for n in zoo.list_datasets() if n not in GENERIC]


def ours():
    """The datasets this plugin ships (they expose ``indices``: global row ids of the split)."""
    return [n for n in registered() if zoo.registry().get("datasets", n).plugin == "data"]


def build(name, split="train"):
    return zoo.create_dataset(name, split=split, **SMALL.get(name, {}))


def check_raw(modality, value):
    if modality == "image":
        assert value.dtype == torch.float32 and value.dim() == 3 and 0 <= value.min() and value.max() <= 1
    elif modality == "text":
        assert isinstance(value, str) and value.strip()
    elif modality == "audio":
        assert value.dtype == torch.float32 and value.dim() == 1 and value.numel() > 0
        assert value.abs().max() <= 1
    elif modality == "video":
        assert value.dtype == torch.float32 and value.dim() == 4 and 0 <= value.min() and value.max() <= 1
    elif modality == "graph":
        assert value.x.dtype == torch.float32 and value.x.dim() == 2 and value.edge_index.shape[0] == 2
    elif modality == "molecule":
        assert isinstance(value, str) and value
    elif modality == "vector":
        assert value.dtype == torch.float32 and value.dim() == 1
    else:
        pytest.fail(f"no raw-form check for modality {modality!r}")


@pytest.mark.parametrize("name", registered())
def test_contract_and_raw_forms(name):
    for split in ("train", "test"):
        ds = build(name, split)
        assert ds.split == split and len(ds) > 0
        assert isinstance(ds.fields, dict) and ds.fields
        assert all(isinstance(getattr(ds, a), str) and getattr(ds, a) for a in ("description", "source", "license"))
        if ds.class_names is not None:
            assert ds.label_fields and all(isinstance(c, str) for c in ds.class_names)
        if ds.prompts is not None:
            assert all("{}" in p for p in ds.prompts)
        items = [ds[i] for i in (0, len(ds) - 1)]
        for item in items:
            for f, modality in ds.fields.items():
                check_raw(modality, item[f])
            for lf in ds.label_fields:
                assert isinstance(item[lf], int)
                if ds.class_names is not None:
                    assert 0 <= item[lf] < len(ds.class_names)
            for tf in getattr(ds, "targets", {}):
                assert isinstance(item[tf], float) and math.isfinite(item[tf])
        for f, modality in ds.fields.items():   # the modality plugin reads and batches these raws
            entry = zoo.registry().get("modalities", modality)
            entry.meta["collate"]([entry.factory(item[f]) for item in items])
        loaded = getattr(ds, "loaded_fields", frozenset())  # the collator skips load for these: the claim holds
        assert set(loaded) <= set(ds.fields)
        for f in loaded:
            load = zoo.registry().get("modalities", ds.fields[f]).factory
            assert all(load(row[f]) is row[f] for row in map(ds.__getitem__, range(min(len(ds), 64)))), (name, f)


@pytest.mark.parametrize("name", registered())
def test_unknown_split_lists_valid_ones(name):
    with pytest.raises(DataError, match="train"):
        build(name, "validation")


@pytest.mark.parametrize("name", ours())
def test_splits_disjoint_and_deterministic(name):
    train, test = build(name, "train"), build(name, "test")
    assert not set(train.indices.tolist()) & set(test.indices.tolist())
    again = build(name, "train")
    assert torch.equal(train.indices, again.indices)
    for i in (0, len(train) // 2):
        a, b = train[i], again[i]
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])


def assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif hasattr(a, "x") and hasattr(a, "edge_index"):
        assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
    else:
        assert a == b


# -- values checked by hand ------------------------------------------------------------------

def test_digits_match_sklearn():
    from sklearn.datasets import load_digits
    bunch = load_digits()
    full = [zoo.create_dataset("digits", split=s) for s in ("train", "test")]
    assert len(full[0]) + len(full[1]) == 1797 and len(full[1]) == round(0.2 * 1797)
    ds = full[0] if 0 in full[0].indices.tolist() else full[1]
    row = ds.indices.tolist().index(0)
    item = ds[row]
    assert torch.allclose(item["image"][0], torch.as_tensor(bunch.images[0], dtype=torch.float32) / 16)
    assert item["class"] == bunch.target[0] == 0
    assert ds.class_names[item["class"]] in item["caption"] or "0" in item["caption"]


def test_digits_caption_modes():
    fixed = zoo.create_dataset("digits", size=32)
    assert [fixed[i]["caption"] for i in range(32)] == [fixed[i]["caption"] for i in range(32)]
    assert len({fixed[i]["caption"].replace(fixed.class_names[fixed[i]["class"]], "#")
                .replace(str(fixed[i]["class"]), "#") for i in range(32)}) > 3   # several templates
    per_epoch = zoo.create_dataset("digits", size=32, captions="epoch")
    first = [per_epoch[i]["caption"] for i in range(32)]
    per_epoch.set_epoch(1)
    assert [per_epoch[i]["caption"] for i in range(32)] != first
    with pytest.raises(DataError, match="fixed"):
        zoo.create_dataset("digits", captions="sometimes")


def test_pydoc_splitter_by_hand():
    from zoo_data.pydoc_topics import paragraphs, pydoc_sentences, split_sentences
    text = ("A heading\n*********\n\nThe first sentence is here, e.g. with an abbreviation inside it. "
            "The second one\nspans two lines of the source text!\n\n   x = compute(a, b)\n\n"
            "   assert_stmt ::= \"assert\" expression\n")
    sentences = [s for p in paragraphs(text) for s in split_sentences(p)]
    assert sentences[:2] == ["The first sentence is here, e.g. with an abbreviation inside it.",
                             "The second one spans two lines of the source text!"]
    everything = pydoc_sentences()
    assert len(everything) == len(set(everything)) > 1000
    assert "Assert statements are a convenient way to insert debugging assertions into a program:" not in everything
    assert ("Assignments to \"__debug__\" are illegal." in everything) is False   # 5 words: too short
    assert any(s.startswith("The current code generator emits no code for an assert statement") for s in everything)
    ds = [zoo.create_dataset("pydoc-topics", split=s) for s in ("train", "test")]
    assert len(ds[0]) + len(ds[1]) == len(everything)
    assert not set(ds[0].sentences) & set(ds[1].sentences)


def test_synthetic_graph_families_by_hand():
    ds = zoo.create_dataset("synthetic-graphs", size=60, min_nodes=6, max_nodes=12)
    assert ds.class_names == ["cycle", "tree", "grid", "complete bipartite", "sparse random", "dense random"]
    seen = set()
    for item in ds:
        g, name = item["graph"], ds.class_names[item["class"]]
        n, e = g.num_nodes, g.edge_index.shape[1] // 2          # undirected edges
        degree = torch.bincount(g.edge_index[0], minlength=n)
        assert torch.equal(g.x[:, -1], torch.ones(n)) and torch.equal(g.x[:, :-1].argmax(1), degree.clamp(max=8))
        if name == "cycle":
            assert e == n and (degree == 2).all()
        elif name == "tree":
            assert e == n - 1 and (degree >= 1).all()
        elif name == "complete bipartite":
            left = int((degree == degree.max()).sum()) if degree.max() != degree.min() else n // 2
            assert e == left * (n - left)
        elif name == "grid":
            assert degree.max() <= 4 and (degree >= 2).all()
        seen.add(name)
    assert len(seen) == 6


def test_nci5k_matches_rdkit_files():
    from rdkit import RDConfig
    folder = Path(RDConfig.RDDataDir) / "NCI"
    first_smiles = (folder / "first_5K.smi").read_text().splitlines()[0].split("\t")[0]
    first_tpsa = next(ln for ln in (folder / "first_5k.tpsa.csv").read_text().splitlines() if not ln.startswith("#"))
    assert first_tpsa.split(",")[0] == first_smiles == "CC1=CC(=O)C=CC1=O"
    parts = [zoo.create_dataset("molecules-nci5k", split=s) for s in ("train", "test")]
    assert len(parts[0]) + len(parts[1]) == 4991                 # 4,999 rows, 8 rdkit cannot parse
    ds = parts[0] if 0 in parts[0].indices.tolist() else parts[1]
    item = ds[ds.indices.tolist().index(0)]
    assert item == {"molecule": first_smiles, "tpsa": pytest.approx(float(first_tpsa.split(",")[1]))}
    assert ds.targets["tpsa"].shape == (len(ds),) and ds.label_fields == []


def test_chembl_matches_rdkit_files():
    from rdkit import RDConfig
    folder = Path(RDConfig.RDContribDir) / "FreeWilson" / "data"
    smiles, name = (folder / "CHEMBL2321810.smi").read_text().splitlines()[0].split()
    parts = [zoo.create_dataset("chembl-2321810", split=s) for s in ("train", "test")]
    assert len(parts[0]) + len(parts[1]) == 1017
    ds = parts[0] if 0 in parts[0].indices.tolist() else parts[1]
    row = ds.indices.tolist().index(0)
    assert ds[row] == {"molecule": smiles, "activity": pytest.approx(5.48)} and ds.chembl_ids[row] == name == "1520012"


def test_molecule_captions_by_hand():
    from zoo_data.captions import describe
    assert describe("CCO") == "a small molecule with no rings, 1 oxygen atom and a hydroxyl group"
    assert describe("OC(=O)c1ccccc1") == ("a small molecule with 1 aromatic ring, 2 oxygen atoms and "
                                          "a carboxylic acid group")
    assert describe("CCN.Cl").startswith("a mixture of 2 components with no rings, 1 nitrogen atom, 1 chlorine")
    ds = zoo.create_dataset("molecule-captions", size=16)
    nci = zoo.create_dataset("molecules-nci5k", size=16)
    assert torch.equal(ds.indices, nci.indices)
    assert [ds[i]["caption"] for i in range(16)] == [describe(nci[i]["molecule"]) for i in range(16)]


def dominant_frequencies(wave, k=1, sample_rate=16000):
    spectrum = torch.fft.rfft(wave).abs()
    peaks = []
    for _ in range(k):
        f = int(spectrum.argmax())
        peaks.append(f * sample_rate / len(wave))
        spectrum[max(0, f - 40):f + 40] = 0
    return sorted(peaks)


def count_bursts(wave, threshold=0.05, hop=160):
    loud = (wave.abs().unfold(0, hop, hop).max(1).values > threshold).int()   # (frames,)
    return int((loud[1:] - loud[:-1] == 1).sum() + loud[0])


def test_tones_encode_pitch_and_count():
    ds = zoo.create_dataset("tones-captions", size=45)
    for i in range(len(ds)):
        item = ds[i]
        k = item["class"]
        pitch, count = ["low", "mid", "high"][k // 3], k % 3 + 1
        (freq,) = dominant_frequencies(item["audio"])
        assert abs(freq / [220, 440, 880][k // 3] - 1) < 0.05
        assert count_bursts(item["audio"]) == count
        assert pitch in item["caption"] and ds.class_names[k].split()[1] == pitch
        assert ("tone" in item["caption"]) == (count == 1)


def test_digits_trimodal_tones_are_dtmf():
    from zoo_data.speech import DTMF
    ds = zoo.create_dataset("digits-trimodal", size=20, audio="tones")
    assert "DTMF" in ds.description
    digits = zoo.create_dataset("digits", size=20)
    for i in range(20):
        item = ds[i]
        assert torch.equal(item["image"], digits[i]["image"]) and item["caption"] == digits[i]["caption"]
        low, high = dominant_frequencies(item["audio"], k=2)
        assert abs(low - DTMF[item["class"]][0]) < 10 and abs(high - DTMF[item["class"]][1]) < 10


def test_digits_trimodal_speech_needs_espeak(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(DataError, match="espeak-ng"):
        zoo.create_dataset("digits-trimodal", audio="speech")
    assert zoo.create_dataset("digits-trimodal", size=4).audio == "tones"     # auto falls back


# Stands in for espeak-ng where the program is not installed: the same command line
# (-v voice -p pitch -s speed -w out.wav word), a 22,050 Hz WAV of a tone padded with silence.
FAKE_ESPEAK = """#!{python}
import sys, zlib
import numpy as np, soundfile as sf
args = sys.argv[1:]
out, word = args[args.index("-w") + 1], args[-1]
sr = 22050
t = np.arange(int(0.4 * sr)) / sr
tone = 0.8 * np.sin(2 * np.pi * (200 + zlib.crc32(word.encode()) % 600) * t)
sf.write(out, np.concatenate([np.zeros(2000), tone, np.zeros(3000)]).astype("float32"), sr)
"""


def test_digits_trimodal_speech_with_espeak(tmp_path, monkeypatch):
    if shutil.which("espeak-ng") is None:  # the real program when installed, else the stand-in
        fake = tmp_path / "espeak-ng"
        fake.write_text(FAKE_ESPEAK.format(python=sys.executable))
        fake.chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
        speech.spoken.cache_clear()
    ds = zoo.create_dataset("digits-trimodal", size=6, audio="speech", seconds=1.0)
    assert "espeak-ng" in ds.description and ds.audio == "speech"
    clips = [ds[i]["audio"] for i in range(6)]
    assert all(c.shape == (16000,) and c.abs().max() > 0.3 for c in clips)
    assert torch.equal(clips[0], ds[0]["audio"])                      # deterministic


def test_moving_digits_move_as_captioned():
    ds = zoo.create_dataset("moving-digits", size=24)
    digits = zoo.create_dataset("digits", size=24)
    moves = {"left": (0, -2), "right": (0, 2), "up": (-2, 0), "down": (2, 0)}
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        video, direction = item["video"], ds.direction_names[item["direction"]]
        assert video.shape == (8, 1, 32, 32) and direction in item["caption"]
        assert str(item["class"]) in item["caption"] or ds.class_names[item["class"]] in item["caption"]
        first = video[0, 0].nonzero().float().mean(0)
        for t in range(1, 8):     # every frame is the first one shifted by t steps, the digit kept whole
            shift = torch.tensor(moves[direction]) * t
            assert torch.allclose(video[t, 0].nonzero().float().mean(0), first + shift)
            assert video[t].sum() == pytest.approx(video[0].sum())
        big = digits[i]["image"][0].repeat_interleave(2, 0).repeat_interleave(2, 1)
        assert video[0].sum() == pytest.approx(float(big.sum()))
        seen.add(direction)
    assert seen == set(moves)


def test_binary_xor_definition():
    ds = zoo.create_dataset("binary-xor", size=500, d=5)
    assert list(ds.fields) == ["a", "b", "c"] and set(ds.fields.values()) == {"vector"}
    a, b, c = (torch.stack([ds[i][f] for i in range(len(ds))]) for f in "abc")
    assert torch.equal(c, (a + b) % 2) and set(a.unique().tolist()) == {0.0, 1.0}
    assert 0.4 < a.mean() < 0.6 and 0.4 < b.mean() < 0.6
    labels = torch.tensor([ds[i]["label"] for i in range(len(ds))])
    assert torch.equal(ds.candidates[labels], b) and len(ds.class_names) == 32
    assert ds.class_names[labels[0]] == "".join(str(int(v)) for v in b[0])
    half = zoo.create_dataset("binary-xor", size=2000, d=5, p=0.5)
    a, b, c = (torch.stack([half[i][f] for i in range(len(half))]) for f in "abc")
    is_xor, is_copy = (c == (a + b) % 2).all(1), (c == a).all(1)
    assert (is_xor | is_copy).all() and 0.4 < is_xor.float().mean() < 0.6
    eight = zoo.create_dataset("binary-xor", size=200, d=1, inputs=7)
    assert list(eight.fields) == list("abcdefgh")
    item = eight[0]
    assert item["h"] == sum(item[f] for f in "abcdefg") % 2
    with pytest.raises(ValueError, match="probability"):
        zoo.create_dataset("binary-xor", p=1.5)


# -- generic datasets over files this test writes ------------------------------------------------

def write_shards(folder, n_per_shard=5):
    """Two tiny webdataset shards (written with the webdataset package): png, txt, cls, json, wav."""
    import io as _io

    import numpy as np
    import soundfile
    import webdataset as wds
    from PIL import Image
    truth = {}
    for shard in range(2):
        with wds.TarWriter(str(folder / f"part-{shard:03d}.tar")) as sink:
            for k in range(n_per_shard):
                key = f"s{shard}{k}"
                pixels = np.full((6, 5, 3), 40 * k + shard, dtype=np.uint8)
                png, wav = _io.BytesIO(), _io.BytesIO()
                Image.fromarray(pixels).save(png, format="PNG")
                wave = np.sin(np.arange(1600) * (k + 1) / 10).astype(np.float32) * 0.5
                soundfile.write(wav, wave, 16000, format="WAV", subtype="FLOAT")
                sink.write({"__key__": key, "png": png.getvalue(), "txt": f"caption {key}", "cls": str(k),
                            "json": json.dumps({"label": k + 10, "title": f"title {key}"}), "wav": wav.getvalue()})
                truth[key] = (pixels, wave, k)
    return truth


def test_webdataset_reads_shards(tmp_path):
    truth = write_shards(tmp_path)
    opts = {"urls": str(tmp_path / "part-{000..001}.tar"),
            "fields": {"image": "png", "caption": "txt", "audio": "wav",
                       "title": {"ext": "json:title", "modality": "text"}},
            "labels": {"class": "cls", "other": "json:label"}}
    train, test = (zoo.create_dataset("webdataset", split=s, **opts) for s in ("train", "test"))
    assert (len(train), len(test)) == (8, 2) and not set(train.indices.tolist()) & set(test.indices.tolist())
    assert train.fields == {"image": "image", "caption": "text", "audio": "audio", "title": "text"}
    seen = []
    for ds in (train, test):
        for i in range(len(ds)):
            item = ds[i]
            key = item["caption"].split()[-1]
            pixels, wave, k = truth[key]
            assert torch.allclose(item["image"], torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
            assert torch.allclose(item["audio"], torch.from_numpy(wave), atol=1e-6)
            assert item["title"] == f"title {key}" and item["class"] == k and item["other"] == k + 10
            seen.append(key)
    assert sorted(seen) == sorted(truth)
    per_split = zoo.create_dataset("webdataset", split="test", urls={"train": str(tmp_path / "part-000.tar"),
                                   "test": [str(tmp_path / "part-001.tar")]}, fields={"caption": "txt"})
    assert sorted(per_split[i]["caption"] for i in range(5)) == [f"caption s1{k}" for k in range(5)]
    with pytest.raises(DataError, match="does not exist"):
        zoo.create_dataset("webdataset", urls=str(tmp_path / "nope-{0..1}.tar"), fields={"caption": "txt"})
    with pytest.raises(DataError, match="modality"):
        zoo.create_dataset("webdataset", urls=str(tmp_path / "part-000.tar"), fields={"x": "bin"})


def test_hf_datasets_reads_local_files(tmp_path):
    import datasets
    rows = {"vec": [[float(i), float(i) / 2] for i in range(10)], "text": [f"row {i}" for i in range(10)],
            "label": [i % 3 for i in range(10)]}
    datasets.Dataset.from_dict(rows).to_parquet(str(tmp_path / "rows.parquet"))
    datasets.Dataset.from_dict(rows).to_json(str(tmp_path / "rows.jsonl"))
    opts = {"fields": {"x": {"column": "vec", "modality": "vector"}, "caption": {"column": "text", "modality": "text"}},
            "labels": {"class": "label"}, "cache_dir": str(tmp_path / "cache")}
    for path in (tmp_path / "rows.parquet", tmp_path / "rows.jsonl"):
        train, test = (zoo.create_dataset("hf-datasets", split=s, path=str(path), **opts) for s in ("train", "test"))
        assert (len(train), len(test)) == (8, 2)
        for ds in (train, test):
            for i in range(len(ds)):
                row = int(ds.indices[i])
                assert ds[i] == {"x": pytest.approx(torch.tensor([row, row / 2])), "caption": f"row {row}",
                                 "class": row % 3}
    saved = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows),
                                  "test": datasets.Dataset.from_dict({k: v[:3] for k, v in rows.items()})})
    saved.save_to_disk(str(tmp_path / "saved"))
    test = zoo.create_dataset("hf-datasets", split="test", path=str(tmp_path / "saved"), **opts)
    assert len(test) == 3 and test[2]["caption"] == "row 2"
    stream = zoo.create_dataset("hf-datasets", split="train", path=str(tmp_path / "saved"), streaming=True, **opts)
    assert [item["class"] for item in stream] == rows["label"]
    with pytest.raises(DataError, match="validation"):
        zoo.create_dataset("hf-datasets", split="validation", path=str(tmp_path / "saved"), **opts)


# -- the recipes of this plugin train ------------------------------------------------------------

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("recipe, overrides", [
    ("xor-symile", {"data.options": {"d": 5, "size": 1000}, "data.batch_size": 128}),
    ("xor-pairwise-clip", {"data.options": {"d": 5, "size": 1000}, "data.batch_size": 128}),
    ("digits-trimodal-symile", {"data.options": {"audio": "tones", "seconds": 0.5}, "data.batch_size": 32}),
])
def test_recipes_train_and_loss_goes_down(tmp_path, recipe, overrides):
    steps = 10
    overrides = {**overrides, "run.steps": steps, "run.log_every": 1, "optim.warmup_steps": 0, "eval.tasks": []}
    result = zoo.train(RECIPES / f"{recipe}.toml", overrides=overrides, run_dir=tmp_path / recipe, progress=False)
    losses = logged_losses(result.run_dir)
    assert len(losses) == steps and all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) < sum(losses[:3])


@pytest.mark.slow
def test_xor_symile_solves_what_pairwise_clip_cannot(tmp_path):
    """The paper's result in miniature: Symile predicts b from (a, c) zero-shot, pairwise CLIP is at chance."""
    overrides = {"run.steps": 60, "data.batch_size": 256, "data.options": {"d": 5, "size": 3000}, "run.log_every": 20}
    top1 = {name: zoo.train(RECIPES / f"xor-{name}.toml", overrides=overrides, run_dir=tmp_path / name,
                            progress=False).metrics["zero_shot/top1"] for name in ("symile", "pairwise-clip")}
    assert top1["symile"] > 0.95 and top1["pairwise-clip"] < 0.1    # chance: 1/32
