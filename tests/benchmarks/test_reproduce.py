"""benchmarks/reproduce.py: every row runs in --quick mode and produces its fields; the
docs page is generated from the rows' JSON; the datasets and the mask the rows rely on."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {"name", "paper", "claim", "setting", "metric", "results", "ours", "baseline", "verdict", "why",
          "command", "seconds", "seeds", "quick"}
VERDICTS = {"reproduced", "reproduced in direction only", "not reproduced"}


@pytest.fixture(scope="module")
def reproduce():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import reproduce
    yield reproduce
    sys.path.remove(str(ROOT / "benchmarks"))


@pytest.mark.slow
def test_every_row_runs_quick_and_the_docs_are_generated_from_it(reproduce, tmp_path):
    assert reproduce.main(["--quick", "--seeds", "1", "--threads", "1", "--out", str(tmp_path), "--write-docs"]) == 0
    page = (tmp_path / "results.md").read_text("utf-8")
    for name in reproduce.ORDER:
        row = json.loads((tmp_path / f"{name}.json").read_text("utf-8"))
        assert FIELDS <= set(row), (name, FIELDS - set(row))
        assert row["quick"] and row["seeds"] == [0]
        assert row["verdict"] in VERDICTS or row["verdict"].startswith("SimCSE:")
        assert row["ours"] and row["baseline"] and set(row["ours"] + row["baseline"]) <= set(row["results"])
        for stat in row["results"].values():     # mean ± sd over the seeds (alignment: over the runs)
            assert stat["values"] and stat["mean"] == pytest.approx(sum(stat["values"]) / len(stat["values"]))
        assert f'id="row-{name}"' in page and row["command"] in page
    assert "quick run: not a measurement" in page


def test_verdict_rule(reproduce):
    from _reproduce_common import direction, stats, verdict
    hi, lo, noisy = stats([0.90, 0.91, 0.92]), stats([0.80, 0.81, 0.82]), stats([0.70, 0.95, 0.80])
    assert direction(hi, lo) == "better" and direction(lo, hi) == "worse"
    assert direction(noisy, lo) == "tie+" and direction(lo, noisy) == "tie"
    assert verdict(["better", "better"]) == "reproduced"
    assert verdict(["better", "tie+"]) == "reproduced in direction only"
    assert verdict(["better", "worse"]) == "not reproduced"
    assert verdict(["tie", "tie"]) == "not reproduced"


def test_reproduce_datasets():
    import zoo
    g = zoo.create_dataset("digits-groups", split="test", size=50)
    assert g.label_fields == ["class", "group"]
    for i in range(len(g)):   # the group is a function of the class
        assert g[i]["group"] == {0: 0, 6: 0, 8: 0, 9: 0, 1: 1, 4: 1, 7: 1}.get(g[i]["class"], 2)
    t = zoo.create_dataset("pydoc-topics-labelled", split="test")
    plain = set(zoo.create_dataset("pydoc-topics", split="test").sentences)
    assert set(t.sentences) <= plain and len(set(t.topics)) > 10
    assert all(n >= 5 for n in __import__("collections").Counter(
        zoo.create_dataset("pydoc-topics-labelled").topics + t.topics).values())


def test_missing_modality_rows_and_mask(fresh_plugins):
    import zoo
    from zoo.data.collate import Collator
    from zoo.plugins import registry
    full = zoo.create_dataset("binary-xor-missing", size=1000, missing=0.0)
    half = zoo.create_dataset("binary-xor-missing", size=1000, missing=0.5)
    dropped = zoo.create_dataset("binary-xor-missing", size=1000, missing=0.5, drop=True)
    test = zoo.create_dataset("binary-xor-missing", split="test", size=1000, missing=0.5)
    assert len(half) == len(full) == 800 and len(dropped) == 400 and not test.absent.any()
    absent = [i for i in range(len(half)) if not half[i]["present"]["c"]]
    assert len(absent) == 400 and all(half[i]["c"].sum() == 0 for i in absent)
    assert all(dropped[i]["present"]["c"] for i in range(len(dropped)))
    model = zoo.create_model({f: {"modality": "vector", "encoder": "mlp", "in_dim": 5, "layers": 1}
                              for f in "abc"}, embed_dim=4)
    strategy = registry().get("pair_strategies", "paired_masked").factory(fields=["a", "b", "c"])
    batch = Collator(model, strategy, half, seed=0)([(i, half[i]) for i in range(8)])
    want = torch.tensor([half[i]["present"]["c"] for i in range(8)])
    assert torch.equal(batch.mask["c"], want) and batch.mask["a"].all() and batch.mask["b"].all()
