"""Fuzzing: no input to the recipe parser or the checkpoint loader raises anything but the
documented errors."""
from __future__ import annotations

import string

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo
from zoo.errors import CheckpointError, RecipeError, ZooError
from zoo.recipes import load_recipe

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

from test_recipes import GOOD as VALID  # noqa: E402

keys = st.sampled_from(["model", "data", "pairs", "objective", "optim", "run", "eval", "towers", "x", "encoder",
                        "embed_dim", "dataset", "batch_size", "lr", "betas", "steps", "options", "name", "tasks",
                        "zz", "description", "schedule", "precision"])
scalars = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.text(string.printable, max_size=12),
                    st.sampled_from([2**63, 2**64, -2**63 - 1, 10**30, 1e308, 5e-324]))  # past int64 / float range
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(scalars, max_size=3),
                                                        st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


@SETTINGS
@given(text=st.text(max_size=300))
def test_recipe_parser_on_random_text(tmp_path, text):
    _parse(tmp_path, text)


def _parse(tmp_path, text: str) -> None:
    """Parse a recipe text: a Recipe or a RecipeError, nothing else (anything else fails the test)."""
    p = tmp_path / "r.toml"
    p.write_text(text, encoding="utf-8")
    try:
        load_recipe(p)
    except RecipeError:
        pass


@SETTINGS
@given(data=st.dictionaries(keys, values, max_size=6))
def test_recipe_parser_on_random_structures(tmp_path, data):
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):
        return  # not representable as TOML (e.g. NaN written as a bare word is fine; mixed arrays are not)
    _parse(tmp_path, text)


@SETTINGS
@given(key=keys, value=values)
def test_recipe_overrides_never_crash(tmp_path, key, value):
    p = tmp_path / "r.toml"
    p.write_text(VALID)
    for path in (key, f"data.{key}", f"model.{key}", f"run.{key}"):
        try:
            load_recipe(p, {path: value})
        except RecipeError:
            pass


def _copy(checkpoint, tmp_path):
    """A fresh copy of the good checkpoint to damage (hypothesis reuses tmp_path across examples)."""
    import shutil
    d = tmp_path / "c"
    shutil.copytree(checkpoint, d, dirs_exist_ok=True)
    return d


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    zoo.create_model(towers={"x": {"modality": "vector", "encoder": "mlp"}}, embed_dim=8).save_pretrained(d)
    return d


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_random_weight_bytes_are_checkpoint_errors(checkpoint, tmp_path, data):
    d = _copy(checkpoint, tmp_path)
    (d / "model.safetensors").write_bytes(data)
    with pytest.raises(CheckpointError):
        zoo.load(f"local-dir:{d}")


@SETTINGS
@given(cut=st.floats(0.0, 0.999), flip=st.integers(0, 10**6))
def test_truncated_or_flipped_weights_are_checkpoint_errors(checkpoint, tmp_path, cut, flip):
    d = _copy(checkpoint, tmp_path)
    good = (checkpoint / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(good[:int(len(good) * cut)])
    with pytest.raises(CheckpointError):
        zoo.load(f"local-dir:{d}")
    header = bytearray(good)
    header[8 + flip % 64] ^= 0xFF          # corrupt the JSON header
    (d / "model.safetensors").write_bytes(bytes(header))
    try:
        zoo.load(f"local-dir:{d}")         # some flips leave valid JSON with the same meaning
    except CheckpointError:
        pass


@SETTINGS
@given(data=st.one_of(st.binary(max_size=512), st.text(max_size=200).map(str.encode)))
def test_random_config_json_is_a_zoo_error(checkpoint, tmp_path, data):
    d = _copy(checkpoint, tmp_path)
    (d / "config.json").write_bytes(data)
    with pytest.raises(ZooError):
        zoo.load(f"local-dir:{d}")


@SETTINGS
@given(towers=st.dictionaries(st.sampled_from(["x", "y"]), st.dictionaries(
    st.sampled_from(["modality", "encoder", "encoder_kwargs", "projection", "levels", "in_dim"]),
    st.one_of(st.sampled_from(["vector", "mlp", "linear", "none", "nope"]), scalars,
              st.dictionaries(st.sampled_from(["in_dim", "hidden", "layers", "dropout", "bogus"]), scalars)),
    max_size=5), max_size=2), embed_dim=scalars)
def test_structured_config_json_is_a_zoo_error(checkpoint, tmp_path, towers, embed_dim):
    import json
    d = _copy(checkpoint, tmp_path)
    cfg = json.loads((checkpoint / "config.json").read_text())
    cfg["model"]["towers"], cfg["model"]["embed_dim"] = towers, embed_dim
    (d / "config.json").write_text(json.dumps(cfg))
    try:
        zoo.load(f"local-dir:{d}")
    except ZooError:
        pass
