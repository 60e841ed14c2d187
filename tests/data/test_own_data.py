"""Your own data: the csv and folder datasets, in-memory rows and models, and docs/own-data.md run as written."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.cli import main as zoo_main
from zoo.data.datasets import ListDataset

DOC = Path(__file__).resolve().parents[2] / "docs" / "own-data.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
TINY = ["--set", "run.steps=4", "--set", "run.progress=false", "--set", "data.batch_size=32", "--set", "optim.warmup_steps=0"]


def write_digits(root: Path, n: int = 60, folder: str = "digits") -> list[list[str]]:
    """The first ``n`` real digits as 8×8 PNGs under ``root/folder/<word>/`` and a CSV beside them."""
    from PIL import Image
    from sklearn.datasets import load_digits
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    d = load_digits()
    rows = []
    for i in range(n):
        p = Path(folder) / words[d.target[i]] / f"{i:04d}.png"
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).save(root / p)
        rows.append([p.as_posix(), f"a photo of the number {words[d.target[i]]}", words[d.target[i]]])
    write_csv(root / "digits.csv", [["filepath", "title", "digit"], *rows])
    return rows


def write_csv(path: Path, rows, sep: str = ",") -> Path:
    path.write_text("\n".join(sep.join(r) for r in rows) + "\n")
    return path


@pytest.mark.slow
def test_the_docs_page_runs_as_written(tmp_path, monkeypatch, capsys):
    """Every block of docs/own-data.md in order: python executed, `# file:` TOML written, `zoo` lines run
    (training shortened to 4 steps); each `zoo eval RUN` agrees with the metrics its training logged."""
    monkeypatch.chdir(tmp_path)
    import sklearn.datasets
    full = sklearn.datasets.load_digits
    monkeypatch.setattr(sklearn.datasets, "load_digits", lambda: _first(full(), 700))   # a third: quicker
    blocks = BLOCK.findall(DOC.read_text())
    assert [k for k, _ in blocks].count("bash") >= 3 and any(k == "python" for k, _ in blocks)
    namespace: dict = {}
    for kind, text in blocks:
        if kind == "toml":
            name = re.match(r"# file: (\S+)", text).group(1)
            (tmp_path / name).write_text(text)
        elif kind == "python":
            text = text.replace('"run.steps": 20', '"run.steps": 4, "optim.warmup_steps": 0')
            exec(compile(text, str(DOC), "exec"), namespace)  # noqa: S102 - the docs' own example
        elif kind == "bash":
            for line in text.splitlines():
                argv = shlex.split(line, comments=True)[1:]
                if argv[0] == "train":
                    assert zoo_main([*argv, *TINY]) == 0
                else:
                    capsys.readouterr()
                    assert zoo_main([*argv, "--json"] if "--json" not in argv else argv) == 0
                    out = json.loads(capsys.readouterr().out)
                    _agrees_with_training(tmp_path / argv[1], argv, out)
    assert namespace["result"].metrics["steps"] == 4
    assert (tmp_path / "runs" / "digits-tuned" / "model.safetensors").is_file()


def _first(bunch, n: int):
    bunch.images, bunch.target = bunch.images[:n], bunch.target[:n]
    return bunch


def _agrees_with_training(run: Path, argv: list[str], out: dict) -> None:
    if "--dataset" in argv or "--match" in argv:  # another dataset or another match: nothing to compare with
        assert out
        return
    logged = json.loads((run / "results.json").read_text())
    assert out.keys() - {"retrieval/match"} <= logged.keys()
    for k in out.keys() - {"retrieval/match"}:
        assert out[k] == pytest.approx(logged[k], abs=1e-6), k


# -- csv ------------------------------------------------------------------------------------
def test_csv_reads_files_relative_to_the_csv_and_splits_by_a_seeded_fraction(tmp_path, monkeypatch):
    rows = write_digits(tmp_path / "data", n=40)
    monkeypatch.chdir(tmp_path)  # paths in the CSV are relative to data/, not to the working directory
    opts = {"path": "data/digits.csv", "fields": {"image": "filepath", "text": "title"}, "label": "digit",
            "prompts": ["a photo of the number {label}"]}
    train, test = (zoo.create_dataset("csv", split=s, **opts) for s in ("train", "test"))
    assert len(train) + len(test) == 40 and len(test) == 8
    seen = {r.cells["filepath"] for r in train.rows} | {r.cells["filepath"] for r in test.rows}
    assert seen == {r[0] for r in rows}
    assert [r.number for r in zoo.create_dataset("csv", split="test", **opts).rows] == [r.number for r in test.rows]
    item = train[0]
    assert item["image"].shape == (1, 8, 8) and isinstance(item["text"], str)
    assert train.class_names[item["digit"]] == train.rows[0].cells["digit"]
    assert train.class_names == test.class_names and train.prompts == ["a photo of the number {}"]
    other = zoo.create_dataset("csv", split="test", seed=1, **opts)
    assert {r.number for r in other.rows} != {r.number for r in test.rows}


def test_csv_a_file_per_split_tsv_and_a_smiles_column(tmp_path):
    write_csv(tmp_path / "train.tsv", [["smiles", "name"], ["CCO", "ethanol"], ["c1ccccc1", "benzene"]], sep="\t")
    write_csv(tmp_path / "test.tsv", [["smiles", "name"], ["CC(=O)O", "acetic acid"]], sep="\t")
    opts = {"path": {"train": str(tmp_path / "train.tsv"), "test": str(tmp_path / "test.tsv")},
            "fields": {"molecule": "smiles", "caption": {"column": "name", "modality": "text"}}}
    train = zoo.create_dataset("csv", split="train", **opts)
    test = zoo.create_dataset("csv", split="test", **opts)
    assert (len(train), len(test)) == (2, 1) and train.fields == {"molecule": "molecule", "caption": "text"}
    mol = test[0]["molecule"]
    assert mol.x.shape[0] == 4 and test[0]["caption"] == "acetic acid"   # C, C, O, O (no hydrogens)
    with pytest.raises(zoo.DataError, match="no split 'val'.*'train', 'test'"):
        zoo.create_dataset("csv", split="val", **opts)


def test_csv_an_audio_column(tmp_path):
    sf = pytest.importorskip("soundfile")
    sf.write(tmp_path / "a.wav", np.sin(np.linspace(0, 100, 1600)).astype(np.float32), 16000)
    write_csv(tmp_path / "x.csv", [["wav", "text"], ["a.wav", "a tone"], ["a.wav", "the tone again"]])
    ds = zoo.create_dataset("csv", path=str(tmp_path / "x.csv"), fields={"audio": "wav", "text": "text"},
                            test_fraction=0.5)
    assert ds[0]["audio"].dim() == 1 and ds[0]["audio"].shape[0] > 1000


def test_csv_bad_input_is_a_data_error_naming_file_row_and_column(tmp_path):
    write_digits(tmp_path, n=6)
    good = tmp_path / "digits.csv"
    fields = {"image": "filepath", "text": "title"}
    lines = good.read_text().splitlines()
    write_csv(tmp_path / "missing.csv", [[lines[0]], [lines[1]], ["digits/nine/nope.png,a nine,nine"]])
    with pytest.raises(zoo.DataError, match=r"missing.csv, row 2 \(line 3\), column 'filepath': file "
                                            r"'digits/nine/nope.png' does not exist"):
        zoo.create_dataset("csv", path=str(tmp_path / "missing.csv"), fields=fields)
    bad = tmp_path / "digits" / "broken.png"
    bad.write_bytes(b"not a png")
    write_csv(tmp_path / "broken.csv", [[lines[0]], ["digits/broken.png,a broken one,one"], *[[ln] for ln in lines[1:]]])
    ds = zoo.create_dataset("csv", path=str(tmp_path / "broken.csv"), fields=fields, split="train")
    i = next(k for k, r in enumerate(ds.rows) if r.number == 1)
    with pytest.raises(zoo.DataError, match=r"broken.csv, row 1 \(line 2\), column 'filepath'.*broken.png"):
        ds[i]
    with pytest.raises(zoo.DataError, match=r"no column\(s\) \['caption'\]; its header is \['filepath', 'title'"):
        zoo.create_dataset("csv", path=str(good), fields={"image": "filepath", "text": "caption"})
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(zoo.DataError, match="empty.csv is empty"):
        zoo.create_dataset("csv", path=str(tmp_path / "empty.csv"), fields=fields)
    write_csv(tmp_path / "header.csv", [["filepath", "title"]])
    with pytest.raises(zoo.DataError, match="header but no rows"):
        zoo.create_dataset("csv", path=str(tmp_path / "header.csv"), fields=fields)
    write_csv(tmp_path / "blank.csv", [[lines[0]], ["digits/x.png,,one"]])
    with pytest.raises(zoo.DataError, match=r"row 1 \(line 2\), column 'filepath'.*|row 1 \(line 2\), column 'title'"):
        zoo.create_dataset("csv", path=str(tmp_path / "blank.csv"), fields=fields)
    with pytest.raises(zoo.UnknownNameError, match="caption = \\{ column = 'title', modality"):
        zoo.create_dataset("csv", path=str(good), fields={"image": "filepath", "caption": "title"})


# -- folder ---------------------------------------------------------------------------------
def test_folder_labels_template_split_and_zero_shot_prompts(tmp_path):
    write_digits(tmp_path, n=50)
    opts = {"root": str(tmp_path / "digits"), "template": "a photo of the number {label}"}
    train, test = (zoo.create_dataset("folder", split=s, **opts) for s in ("train", "test"))
    assert {p for p, _ in train.files}.isdisjoint({p for p, _ in test.files}) and len(train) + len(test) == 50
    assert {c for _, c in test.files} == set(range(10))           # a fraction of every class
    assert train.fields == {"image": "image", "caption": "text"} and train.label_fields == ["class"]
    path, c = train.files[0]
    item = train[0]
    assert path.parent.name == train.class_names[c] and item["class"] == c
    assert item["caption"] == f"a photo of the number {train.class_names[c]}" and item["image"].shape == (1, 8, 8)
    assert test.prompts == ["a photo of the number {}"]
    model = zoo.create_model(towers={"image": {"encoder": "mlp", "in_shape": [1, 8, 8]},
                                     "text": {"encoder": "bow", "num_buckets": 512}}, embed_dim=8)
    r = zoo.evaluate(model, test, task="zero_shot")
    assert 0 <= r["top1"] <= 1 and r["top5"] >= r["top1"]


def test_folder_train_and_test_subfolders_share_class_ids(tmp_path):
    write_digits(tmp_path, n=30, folder="data/train")
    write_digits(tmp_path, n=12, folder="data/test")
    (tmp_path / "data" / "train" / "zero" / "notes.csv").write_text("x")      # skipped: no modality reads .csv
    (tmp_path / "data" / "train" / "zero" / ".hidden.png").write_text("x")    # skipped: hidden
    train = zoo.create_dataset("folder", split="train", root=str(tmp_path / "data"))
    test = zoo.create_dataset("folder", split="test", root=str(tmp_path / "data"))
    assert (len(train), len(test)) == (30, 12) and train.class_names == test.class_names
    assert all(p.parent.name == test.folder_names[c] for p, c in test.files)
    assert test[0]["caption"] == test.class_names[test.files[0][1]]           # the default template "{label}"


def test_folder_picks_the_modality_by_extension_and_names_bad_files(tmp_path):
    sf = pytest.importorskip("soundfile")
    for cls in ("low", "high"):
        (tmp_path / "tones" / cls).mkdir(parents=True)
        for k in range(3):
            sf.write(tmp_path / "tones" / cls / f"{k}.wav", np.zeros(800, np.float32), 16000)
    ds = zoo.create_dataset("folder", root=str(tmp_path / "tones"), template="a {label} tone")
    assert ds.fields == {"audio": "audio", "caption": "text"} and ds[0]["audio"].dim() == 1
    (tmp_path / "tones" / "low" / "9.wav").write_bytes(b"RIFF broken")
    ds, i = next((d, k) for s in ("train", "test") for d in [zoo.create_dataset("folder", root=str(tmp_path / "tones"),
                                                                               split=s)]
                 for k, (p, _) in enumerate(d.files) if p.name == "9.wav")
    with pytest.raises(zoo.DataError, match=rf"9.wav \(row {i} of split '{ds.split}'\).*cannot read audio"):
        ds[i]
    (tmp_path / "tones" / "low" / "x.png").write_bytes(b"")
    with pytest.raises(zoo.DataError, match="mixes files of several modalities.*set modality"):
        zoo.create_dataset("folder", root=str(tmp_path / "tones"))
    assert len(zoo.create_dataset("folder", root=str(tmp_path / "tones"), modality="audio"))
    with pytest.raises(zoo.DataError, match="has no \\{label\\}"):
        zoo.create_dataset("folder", root=str(tmp_path / "tones"), modality="audio", template="a tone")
    with pytest.raises(zoo.DataError, match="is not a folder"):
        zoo.create_dataset("folder", root=str(tmp_path / "nowhere"))


# -- in memory ------------------------------------------------------------------------------
RECIPE = {"model": {"embed_dim": 8, "towers": {"x": {"modality": "vector", "encoder": "mlp", "in_dim": 16},
                                               "y": {"modality": "vector", "encoder": "mlp", "in_dim": 16}}},
          "data": {"batch_size": 8},
          "pairs": {"strategy": "paired", "options": {"fields": ["x", "y"]}},
          "run": {"steps": 3, "progress": False, "output_dir": "runs"}}


def _rows(n: int = 32) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, generator=g)
    return [{"x": x[i], "y": x[i] + 0.1, "class": i % 4} for i in range(n)]


def test_train_takes_a_dict_recipe_a_list_of_rows_and_a_built_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fields = {"x": "vector", "y": "vector"}
    model = zoo.create_model(towers={k: {"modality": "vector", "encoder": "mlp", "in_dim": 16} for k in fields},
                             embed_dim=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = {k: v for k, v in RECIPE.items() if k != "model"}            # no [model]: the object is the model
    result = zoo.train(recipe, dataset=ListDataset(_rows(), fields=fields), eval_dataset=ListDataset(_rows(16), fields=fields), model=model,
                       overrides={"eval.tasks": ["retrieval"], "run.name": "mem"})
    assert result.model is model and any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert result.metrics["retrieval/x->y R@1"] == zoo.evaluate(model, ListDataset(_rows(16), fields=fields),
                                                                task="retrieval")["x->y R@1"]
    saved = (tmp_path / "runs" / "mem" / "recipe.toml").read_text()
    assert "(in memory: ListDataset)" in saved and "(in memory: random init)" in saved
    again = zoo.load(f"local-dir:{tmp_path / 'runs' / 'mem'}")
    torch.testing.assert_close(again.state_dict(), {k: v.cpu() for k, v in model.state_dict().items()})


def test_train_on_rows_needs_eval_data_before_training_and_rows_are_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(zoo.RecipeError, match="pass eval_dataset="):
        zoo.train(RECIPE, dataset=ListDataset(_rows(), fields={"x": "vector", "y": "vector"}),
                  overrides={"eval.tasks": ["retrieval"]})
    assert not (tmp_path / "runs").exists()
    with pytest.raises(zoo.DataError, match="neither a modality.*fields="):
        zoo.train(RECIPE, dataset=_rows())                    # "x", "y" are not modality names
    ds = ListDataset([{"vector": torch.zeros(16), "class": 1}, {"vector": "oops", "class": 2}])
    assert ds.fields == {"vector": "vector"} and ds.label_fields == ["class"]
    with pytest.raises(zoo.DataError, match="row 1, field 'vector'"):
        ds[1]
    assert set(zoo.evaluate(zoo.create_model(towers={"vector": {"encoder": "mlp", "in_dim": 16}}, embed_dim=4),
                            [{"vector": torch.randn(16), "class": i % 2} for i in range(6)], task="alignment")) \
        == {"uniformity vector", "alignment vector (same label)"}       # zoo.evaluate takes rows too
    with pytest.raises(zoo.DataError, match="row 1 .*keys"):
        ListDataset([{"vector": torch.zeros(16)}, {"text": "a"}])
