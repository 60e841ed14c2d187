"""Strict recipes: unknown keys and wrong types name the key, its line and the valid keys."""
from __future__ import annotations

from pathlib import Path

import pytest

from zoo.errors import RecipeError
from zoo.recipes import load_recipe, parse_value

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
[model]
embed_dim = 8

[model.towers.x]
modality = "vector"
encoder = "mlp"

[data]
dataset = "synthetic-pairs"
batch_size = 16
"""


def _write(tmp_path, text):
    p = tmp_path / "r.toml"
    p.write_text(text)
    return p


def test_defaults_and_types(tmp_path):
    r = load_recipe(_write(tmp_path, GOOD))
    assert r.data.batch_size == 16 and r.objective.name == "clip" and r.optim.schedule == "cosine"
    assert r.model.towers["x"] == {"modality": "vector", "encoder": "mlp"}


@pytest.mark.parametrize("bad, line, key", [
    (GOOD.replace("batch_size = 16", "batch_sise = 16"), 10, "data.batch_sise"),
    (GOOD.replace("embed_dim = 8", "embed_dims = 8"), 2, "model.embed_dims"),
    (GOOD + "\n[optimizer]\nlr = 1\n", 12, "optimizer"),
])
def test_unknown_key_names_key_line_and_valid_keys(tmp_path, bad, line, key):
    with pytest.raises(RecipeError) as err:
        load_recipe(_write(tmp_path, bad))
    msg = str(err.value)
    assert f"r.toml:{line}: unknown key {key!r}" in msg and "Valid keys" in msg


def test_wrong_type_names_the_line(tmp_path):
    with pytest.raises(RecipeError, match=r"r.toml:10: 'data.batch_size' must be an integer, got a string"):
        load_recipe(_write(tmp_path, GOOD.replace("batch_size = 16", 'batch_size = "16"')))
    with pytest.raises(RecipeError, match=r"r.toml:2: model.embed_dim must be > 0"):
        load_recipe(_write(tmp_path, GOOD.replace("embed_dim = 8", "embed_dim = 0")))


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="not valid TOML.*line 2"):
        load_recipe(_write(tmp_path, "[model]\nembed_dim = = 3\n"))
    with pytest.raises(RecipeError, match="cannot read recipe"):
        load_recipe(tmp_path / "nope.toml")


def test_overrides_are_type_checked(tmp_path):
    p = _write(tmp_path, GOOD)
    r = load_recipe(p, ["optim.lr=3e-4", "run.steps=5", "data.options.size=64", "optim.betas=[0.9, 0.95]"])
    assert r.optim.lr == 3e-4 and r.run.steps == 5 and r.data.options == {"size": 64}
    assert load_recipe(p, {"optim.lr": 1}).optim.lr == 1.0  # ints are fine where floats are wanted
    with pytest.raises(RecipeError, match=r"\(from --set\): 'optim.lr' must be a number, got a string 'fast'"):
        load_recipe(p, ["optim.lr=fast"])
    with pytest.raises(RecipeError, match="unknown key 'optim.lrr'"):
        load_recipe(p, ["optim.lrr=1"])
    with pytest.raises(RecipeError, match="key.path=value"):
        load_recipe(p, ["optim.lr"])
    with pytest.raises(RecipeError, match="valid: cosine, linear, constant"):
        load_recipe(p, ["optim.schedule=exp"])


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("true") is True and parse_value("[1, 2]") == [1, 2]
    assert parse_value("clip") == "clip" and parse_value('"x y"') == "x y"


def test_round_trip_through_toml(tmp_path):
    r = load_recipe(_write(tmp_path, GOOD), ["objective.options.label_smoothing=0.1"])
    again = load_recipe(_write(tmp_path, r.to_toml()))
    assert again.to_dict() == r.to_dict()


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path):
    r = load_recipe(path)
    assert r.data.dataset and (r.model.towers or r.model.init)
