"""The hierarchical multi-level objective: sums of base losses, COMET and BioCLIP configurations
(read from the recipes), "view/level" keys, level weights and the configuration errors."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.errors import ShapeError, UnknownNameError
from zoo.objectives.dcl import DCLLoss
from zoo.objectives.hierarchical import HierarchicalLoss
from zoo.objectives.supcon import SupConLoss

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TOL = dict(atol=1e-5, rtol=1e-5)
RANKS = ["kingdom", "phylum", "class", "order", "family", "genus", "species"]


def leaves(keys, batch=8, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(batch, dim, generator=g, dtype=torch.float64, requires_grad=True) for k in keys}


def unit(raw):
    return {k: F.normalize(x, dim=1) for k, x in raw.items()}


def recipe_levels(name):
    table = tomllib.loads((RECIPES / name).read_text("utf-8"))["objective"]
    assert table["name"] == "hierarchical"
    return table["options"]["levels"]


def check_backward(loss, raw):
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(loss)
    for k, x in raw.items():
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0, k


def test_two_levels_equal_the_weighted_sum_of_their_base_losses():
    raw = leaves(["x.1", "x.2"])
    s = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    patient = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    emb = unit(raw)
    loss = zoo.create_objective("hierarchical", levels=[
        {"name": "sample", "views": ["x.1", "x.2"], "objective": "dcl", "weight": 0.3},
        {"name": "patient", "views": ["x.1", "x.2"], "positives": "patient", "weight": 0.7},
    ])(emb, logit_scale=s, labels={"patient": patient, "trial": torch.arange(8)})
    by_hand = (0.3 * DCLLoss()(emb, logit_scale=s)
               + 0.7 * SupConLoss()(emb, logit_scale=s, labels={"patient": patient}))
    torch.testing.assert_close(loss, by_hand, **TOL)
    leaves_ = [*raw.values(), s]
    for g_ours, g_hand in zip(torch.autograd.grad(loss, leaves_, retain_graph=True),
                              torch.autograd.grad(by_hand, leaves_)):
        torch.testing.assert_close(g_ours, g_hand, **TOL)


def test_defaults_are_clip_for_rows_and_supcon_for_labels():
    h = HierarchicalLoss(levels=[{"name": "pair", "views": ["a", "b"]},
                                 {"name": "genus", "views": ["a", "b"], "positives": "genus"}])
    assert type(h.objectives["pair"]).__name__ == "ClipLoss"
    assert isinstance(h.objectives["genus"], SupConLoss)
    assert [lv.weight for lv in h.levels] == [1.0, 1.0]
    emb = unit(leaves(["a", "b"]))
    torch.testing.assert_close(h.level_losses(emb, logit_scale=3.0, labels={"genus": torch.arange(8) % 2})["pair"],
                               zoo.create_objective("clip")(emb, logit_scale=3.0), **TOL)


def test_row_positives_through_supcon_are_ntxent():
    from lightly.loss import NTXentLoss

    raw = leaves(["a", "b"], seed=1)
    emb = unit(raw)
    h = HierarchicalLoss(levels=[{"name": "sample", "views": ["a", "b"], "objective": "supcon"}])
    torch.testing.assert_close(h(emb, logit_scale=5.0), NTXentLoss(temperature=0.2)(emb["a"], emb["b"]), **TOL)


def comet_batch(levels):
    keys = sorted({key for level in levels for key in level["views"]})
    labels = {"patient": torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]),
              "trial": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]),
              "sample": torch.arange(12)}
    return leaves(keys, batch=12, seed=2), labels


def test_comet_recipe_four_levels_forward_and_backward():
    levels = recipe_levels("comet-hierarchical.toml")
    h = zoo.create_objective("hierarchical", levels=levels)
    assert [lv.name for lv in h.levels] == ["observation", "sample", "trial", "patient"]
    assert [lv.positives for lv in h.levels] == ["row", "row", "trial", "patient"]
    observation = h.levels[0].views                                   # e.g. ("ecg.1/layer1", "ecg.2/layer1")
    assert all("/" in key for key in observation)
    assert h.required_views == {"ecg.1", "ecg.2", *observation}
    assert h.required_levels == {key.split("/")[0]: {key.split("/")[1]} for key in observation}
    raw, labels = comet_batch(levels)
    s = torch.tensor(14.3, dtype=torch.float64, requires_grad=True)
    loss = h(unit(raw), logit_scale=s, labels=labels)
    per_level = h.level_losses(unit(raw), logit_scale=s, labels=labels)
    weights = {"observation": 0.15, "sample": 0.35, "trial": 0.25, "patient": 0.25}
    torch.testing.assert_close(loss, sum(weights[k] * v for k, v in per_level.items()), **TOL)
    check_backward(loss, raw)
    assert s.grad is not None and s.grad != 0


def test_comet_fixed_level_temperature_is_used():
    levels = recipe_levels("comet-hierarchical.toml")
    raw, labels = comet_batch(levels)
    emb = unit(raw)
    h = HierarchicalLoss(levels=levels)
    trial = h.level_losses(emb, logit_scale=1.0, labels=labels)["trial"]
    expected = SupConLoss()({"ecg.1": emb["ecg.1"], "ecg.2": emb["ecg.2"]}, logit_scale=10.0,
                            labels={"trial": labels["trial"]})
    torch.testing.assert_close(trial, expected, **TOL)


def test_bioclip_recipe_seven_ranks_forward_and_backward():
    levels = recipe_levels("bioclip-ranks.toml")
    h = zoo.create_objective("hierarchical", levels=levels)
    assert [lv.positives for lv in h.levels] == ["row", *RANKS]
    assert h.required_views == {"image", "text"}
    g = torch.Generator().manual_seed(3)
    species = torch.randint(0, 12, (16,), generator=g)                 # coarser ranks group species
    labels = {rank: species // div for rank, div in zip(RANKS, [12, 8, 6, 4, 3, 2, 1])}
    raw = leaves(["image", "text"], batch=16, seed=4)
    s = torch.tensor(10.0, dtype=torch.float64, requires_grad=True)
    assert set(h.level_losses(unit(raw), logit_scale=s, labels=labels)) == {"pair", *RANKS}
    check_backward(h(unit(raw), logit_scale=s, labels=labels), raw)


def test_a_view_level_key_is_consumed():
    raw = leaves(["ecg", "ecg/layer2", "ecg_aug", "ecg_aug/layer2"], seed=5)
    h = HierarchicalLoss(levels=[{"name": "deep", "views": ["ecg", "ecg_aug"], "objective": "dcl"},
                                 {"name": "mid", "views": ["ecg/layer2", "ecg_aug/layer2"], "objective": "dcl",
                                  "weight": 0.5}])
    emb = unit(raw)
    loss = h(emb, logit_scale=3.0)
    expected = (DCLLoss()({"a": emb["ecg"], "b": emb["ecg_aug"]}, logit_scale=3.0)
                + 0.5 * DCLLoss()({"a": emb["ecg/layer2"], "b": emb["ecg_aug/layer2"]}, logit_scale=3.0))
    torch.testing.assert_close(loss, expected, **TOL)
    check_backward(loss, raw)                      # the layer2 tensors receive gradients


def test_weight_zero_removes_a_level_and_its_views():
    raw = leaves(["a", "b"], seed=6)
    emb = unit(raw)
    h = HierarchicalLoss(levels=[{"name": "kept", "views": ["a", "b"], "objective": "dcl"},
                                 {"name": "off", "views": ["a/never", "b"], "positives": "patient", "weight": 0}])
    assert h.required_views == {"a", "b"}
    loss = h(emb, logit_scale=2.0)                # no 'a/never' key and no 'patient' label needed
    torch.testing.assert_close(loss, DCLLoss()(emb, logit_scale=2.0), **TOL)
    assert set(h.level_losses(emb, logit_scale=2.0)) == {"kept"}


def test_mask_is_passed_to_each_level_by_view():
    seen = {}

    class Recorder(torch.nn.Module):
        def forward(self, embeddings, *, logit_scale, logit_bias=None, labels=None, mask=None):
            seen["mask"], seen["labels"] = mask, labels
            return sum(z.sum() for z in embeddings.values()) * 0

    original = zoo.create_objective
    try:
        zoo.create_objective = lambda name, **kw: Recorder() if name == "recorder" else original(name, **kw)
        h = HierarchicalLoss(levels=[{"name": "l", "views": ["a/x", "b"], "objective": "recorder"}])
    finally:
        zoo.create_objective = original
    present = torch.tensor([True] * 7 + [False])
    h(unit(leaves(["a/x", "b"])), logit_scale=1.0, mask={"a": present, "c": present})
    assert set(seen["mask"]) == {"a/x"} and torch.equal(seen["mask"]["a/x"], present)
    assert seen["labels"] is None


# -- errors -----------------------------------------------------------------------------------
def test_unknown_level_key_names_the_key_and_the_valid_ones():
    with pytest.raises(ValueError, match=r"'view'.*valid keys: name, views, positives, objective"):
        HierarchicalLoss(levels=[{"name": "l", "view": ["a", "b"]}])


@pytest.mark.parametrize("levels,match", [
    ([], "non-empty list"),
    ({"name": "l", "views": ["a"]}, "non-empty list"),
    ([{"views": ["a", "b"]}], "'name'"),
    ([{"name": "l", "views": "a"}], "'views'"),
    ([{"name": "l", "views": []}], "'views'"),
    ([{"name": "l", "views": ["a", "b"], "weight": -1}], "'weight'"),
    ([{"name": "l", "views": ["a", "b"], "weight": 0}], "weight > 0"),
    ([{"name": "l", "views": ["a", "b"], "logit_scale": 0}], "'logit_scale'"),
    ([{"name": "l", "views": ["a", "b"], "options": 3}], "'options'"),
    ([{"name": "l", "views": ["a", "b"]}, {"name": "l", "views": ["a", "b"]}], "unique"),
    ([{"name": "l", "views": ["a", "b"], "positives": "genus", "objective": "clip"}], "supports label positives"),
    ([{"name": "l", "views": ["a", "b"], "positives": "genus", "options": {"label": "species"}}], "options.label"),
])
def test_impossible_configurations_raise_value_errors(levels, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalLoss(levels=levels)


def test_unknown_objective_and_options_are_reported():
    with pytest.raises(UnknownNameError, match="supcn"):
        HierarchicalLoss(levels=[{"name": "l", "views": ["a", "b"], "objective": "supcn"}])
    with pytest.raises(ValueError, match="weight_sigmaa"):
        HierarchicalLoss(levels=[{"name": "l", "views": ["a", "b"], "objective": "dcl",
                                  "options": {"weight_sigmaa": 0.5}}])


def test_missing_label_and_missing_view_are_shape_errors():
    h = HierarchicalLoss(levels=[{"name": "patient", "views": ["a", "a/layer1"], "positives": "patient"}])
    emb = unit(leaves(["a", "a/layer1"]))
    with pytest.raises(ShapeError, match=r"labels\['patient'\].*got labels: trial"):
        h(emb, logit_scale=1.0, labels={"trial": torch.arange(8)})
    with pytest.raises(ShapeError, match="labels"):
        h(emb, logit_scale=1.0)
    with pytest.raises(ShapeError, match=r"'a/layer1'.*got keys 'a', 'b'"):
        h(unit(leaves(["a", "b"])), logit_scale=1.0, labels={"patient": torch.arange(8)})
