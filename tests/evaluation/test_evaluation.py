"""Evaluation tasks on tiny data whose answers are worked out by hand."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import QUICK

import zoo
from zoo.evaluation.embed import Embedded
from zoo.evaluation.tasks import alignment_uniformity, mip_zero_shot, retrieval, topk_accuracy
from zoo.objectives.align_uniform import alignment
from zoo.training.trainer import train

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"


def test_topk_accuracy_by_hand():
    logits = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])
    y = torch.tensor([0, 2, 2])
    # row 0 right; row 1 ranks class 2 second; row 2 right → top1 = 2/3, top2 = 1
    acc = topk_accuracy(logits, y, ks=(1, 2, 5))
    assert acc == pytest.approx({"top1": 2 / 3, "top2": 1.0, "top5": 1.0})


def _emb(**fields) -> Embedded:
    return Embedded({k: torch.tensor(v, dtype=torch.float32) for k, v in fields.items()},
                    {"class": torch.tensor([0, 1, 1])})


def test_retrieval_by_hand():
    e = _emb(a=[[1, 0, 0], [0, 1, 0], [0, 0, 1]], b=[[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    r = retrieval(e, match="index")
    # a→b: row 0 finds b0 first (rank 1); rows 1 and 2 find their pair second (rank 2)
    assert r["a->b R@1"] == pytest.approx(1 / 3) and r["a->b R@5"] == 1.0
    assert r["a->b mean_rank"] == pytest.approx(5 / 3) and r["a->b median_rank"] == 2.0
    assert r["b->a mean_rank"] == pytest.approx(5 / 3)
    # matching by label: rows 1 and 2 share class 1, so their top hit is right
    assert retrieval(e, match="label")["a->b R@1"] == 1.0


def test_retrieval_matches_by_label_by_default_when_the_dataset_has_one_label():
    """The default of zoo.evaluate / zoo eval is the one a recipe's [eval] uses: same label when there is one."""
    e = _emb(a=[[1, 0, 0], [0, 1, 0], [0, 0, 1]], b=[[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert retrieval(e) == retrieval(e, match="label") and retrieval(e)["match"] == "label (class)"
    e.labels = {}
    assert retrieval(e) == retrieval(e, match="index") and retrieval(e)["a->b R@1"] == pytest.approx(1 / 3)
    e.labels = {"class": torch.tensor([0, 1, 1]), "group": torch.tensor([0, 0, 1])}
    assert retrieval(e)["match"] == "index" and retrieval(e, label="group")["match"] == "label (group)"
    with pytest.raises(zoo.UnknownNameError, match="retrieval match"):
        retrieval(e, match="exact")


def test_alignment_and_uniformity_by_hand():
    e = _emb(a=[[1, 0], [0, 1], [-1, 0]], b=[[1, 0], [0, 1], [-1, 0]])
    r = alignment_uniformity(e)
    assert r["alignment a-b"] == 0.0
    # pairwise squared distances: 2, 4, 2 → log(mean(exp(-2·d²))) = log((2e^-4 + e^-8)/3)
    expected = torch.log((2 * torch.exp(torch.tensor(-4.0)) + torch.exp(torch.tensor(-8.0))) / 3).item()
    assert r["uniformity a"] == pytest.approx(expected, rel=1e-5)


def test_alignment_of_one_field_uses_same_label_pairs_or_only_uniformity():
    e = Embedded({"t": torch.tensor([[1.0, 0], [0, 1], [1, 0]])}, {"class": torch.tensor([0, 1, 0])})
    r = alignment_uniformity(e)
    assert r["alignment t (same label)"] == 0.0                     # rows 0 and 2: the only same-label pair
    assert r["uniformity t"] == pytest.approx(alignment_uniformity(Embedded(e.emb, {}))["uniformity t"])
    assert set(alignment_uniformity(Embedded(e.emb, {}))) == {"uniformity t"}   # no positives without a pair or label
    z = torch.nn.functional.normalize(torch.randn(9, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1])
    i, j = torch.nonzero((y[:, None] == y[None, :]).triu(diagonal=1), as_tuple=True)
    expected = alignment(z[i], z[j]).item()                                     # every same-label pair i < j
    assert alignment_uniformity(Embedded({"t": z}, {"class": y}))["alignment t (same label)"] == pytest.approx(expected)


def test_mip_zero_shot_by_hand():
    # c = a ⊙ b elementwise on ±1 codes: the MIP Σ a·b·c is maximal for the true c
    a = torch.tensor([[1, 1, -1, -1], [1, -1, 1, -1], [-1, -1, 1, 1]], dtype=torch.float32) / 2
    b = torch.tensor([[1, -1, 1, -1], [1, 1, 1, 1], [1, -1, -1, 1]], dtype=torch.float32) / 2
    c = a * b * 2
    e = Embedded({"a": a, "b": b, "c": c}, {}, raws={"c": [torch.tensor(i) for i in range(3)]})
    assert mip_zero_shot(e, "c")["top1"] == 1.0
    e.raws["c"] = [torch.tensor(0)] * 3                  # every candidate equal: still right
    assert mip_zero_shot(e, "c")["top1"] == 1.0
    # pairwise scores Σ_m <z_m, c_j> cannot see the XOR: here every candidate ties with the truth at 0
    e.raws["c"] = [torch.tensor(i) for i in range(3)]
    pair = (a @ c.T + b @ c.T)
    expected = (pair.argmax(dim=1) == torch.arange(3)).float().mean().item()
    assert mip_zero_shot(e, "c", score="pairwise")["top1"] == pytest.approx(expected)


def test_linear_probe_and_unknown_task(tiny_model):
    r = zoo.evaluate(tiny_model, "synthetic-pairs", task="linear_probe", dataset_options={"size": 200})
    assert set(r) == {"accuracy (embeddings)", "accuracy (baseline: raw values)"}
    assert 0.0 <= r["accuracy (embeddings)"] <= 1.0 and r["accuracy (baseline: raw values)"] > 0.9
    with pytest.raises(zoo.UnknownNameError, match="retrieval"):
        zoo.evaluate(tiny_model, "synthetic-pairs", task="retreival")


def test_training_evaluates_keeps_best_and_draws(tmp_path):
    over = {**QUICK, "run.epochs": 2, "run.eval_every": 4, "eval.tasks": ["retrieval", "alignment", "linear_probe"],
            "eval.best_metric": "retrieval/x->y R@1", "eval.options": {"retrieval": {"match": "label"}}}
    result = train(QUICKSTART, overrides=over, run_dir=tmp_path)
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval" in r]
    assert [r["step"] for r in evals] == [4, 8, 12, 16]
    assert evals[-1]["eval"]["retrieval/x->y R@1"] > evals[0]["eval"]["retrieval/x->y R@1"]
    assert result.metrics["retrieval/x->y R@1"] == evals[-1]["eval"]["retrieval/x->y R@1"]
    assert 0.5 < result.metrics["linear_probe/accuracy (embeddings)"] <= 1.0
    best = json.loads((tmp_path / "best" / "config.json").read_text())
    assert best["model"]["embed_dim"] == 32
    for png in ("training.png", "similarity.png", "embeddings.png"):
        assert (tmp_path / "plots" / png).stat().st_size > 5_000, png


def test_molecule_linear_probe_reports_the_fingerprint_baseline():
    m = zoo.create_model(towers={"molecule": {"encoder": "gin", "layers": 2, "hidden": 16, "out_dim": 16}},
                         embed_dim=8)
    r = zoo.evaluate(m, "chembl-2321810", task="linear_probe", target="activity")
    base = r["r2 (baseline: Morgan fingerprint r=2, 2048 bits)"]
    assert 0.5 < base < 1.0 and r["r2 (embeddings)"] < 1.0


DIGITS_CLIP = Path(__file__).resolve().parents[2] / "recipes" / "digits-clip.toml"


def test_zoo_eval_of_a_run_agrees_with_what_training_logged(tmp_path, capsys):
    """The README's `zoo eval RUN --dataset digits --task retrieval` gives the numbers training logged
    (training matched by label, the CLI used to match by index: R@1 0.111 against 0.983)."""
    from zoo.cli import main
    run = tmp_path / "digits-clip"
    assert main(["train", str(DIGITS_CLIP), "--run-dir", str(run), "--set", "run.steps=6", "--set", "run.eval_every=0",
                 "--set", "run.progress=false", "--set", "data.batch_size=32", "--set", "optim.warmup_steps=0"]) == 0
    logged = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in ln][-1]["eval"]
    capsys.readouterr()
    for argv in (["--dataset", "digits", "--task", "retrieval"], []):
        assert main(["eval", str(run), *argv, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        numbers = {k: v for k, v in out.items() if isinstance(v, float)}
        assert numbers and numbers == pytest.approx({k: logged[k] for k in numbers}, abs=1e-6)
    assert set(numbers) == set(logged) and out["retrieval/match"] == "label (class)"
    assert main(["eval", str(run), "--task", "retrieval", "--match", "index", "--json", "--batch-size", "64",
                 "--device", "cpu", "--split", "test"]) == 0
    by_index = json.loads(capsys.readouterr().out)
    assert by_index["retrieval/match"] == "index"
    assert by_index["retrieval/image->caption R@1"] < logged["retrieval/image->caption R@1"]


def test_zoo_eval_names_the_dataset_it_needs(capsys):
    from zoo.cli import main
    assert main(["eval", "local-dir:nowhere"]) == 2
    assert "--dataset NAME" in capsys.readouterr().err


@pytest.mark.slow
def test_zoo_eval_alignment_of_a_text_model_on_a_one_field_corpus(capsys):
    """`zoo eval st:all-MiniLM-L6-v2 --dataset pydoc-topics --task alignment` (a raw ValueError before)."""
    from zoo.cli import main
    assert main(["eval", "st:all-MiniLM-L6-v2", "--dataset", "pydoc-topics", "--task", "alignment",
                 "--data-option", "size=24", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"alignment/uniformity text"} and -4 < out["alignment/uniformity text"] < 0
