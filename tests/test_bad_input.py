"""Bad input gets a ZooError that names the problem and the fix (the core's share of the list;
each modality plugin tests its own unreadable files)."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers import QUICK

import zoo
from zoo.errors import DataError, ShapeError, UnknownNameError
from zoo.training.trainer import train

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.toml"


def test_a_batch_missing_a_view_the_objective_needs(tmp_path):
    with pytest.raises(ShapeError, match=r"needs exactly 2 views, got 1 \(x\)"):
        train(QUICKSTART, overrides={**QUICK, "pairs.options.fields": ["x"], "pairs.options.augment": {}},
              run_dir=tmp_path)


def test_empty_dataset(tmp_path):
    with pytest.raises(DataError, match="is empty"):
        zoo.create_dataset("synthetic-pairs", size=0)


def test_unknown_dataset_field_in_pairs(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown dataset field 'z'.*fields are: x, y"):
        train(QUICKSTART, overrides={**QUICK, "pairs.options.fields": ["x", "z"]}, run_dir=tmp_path)


def test_unknown_augmentation_for_a_modality(tmp_path):
    with pytest.raises(UnknownNameError, match="gaussian_noise"):
        train(QUICKSTART, overrides={**QUICK, "pairs.options.augment": {"x": [{"name": "gausian_noise"}]}},
              run_dir=tmp_path)


def test_a_dataset_field_without_a_tower(tmp_path):
    with pytest.raises(UnknownNameError, match=r"No tower encodes modality 'vector'; add one under \[model.towers.x\]"):
        zoo.train(QUICKSTART, overrides={**QUICK, "model.towers": {"x": {"modality": "vector", "encoder": "mlp"}},
                                         "model.towers.x.modality": "image"}, run_dir=tmp_path)


def test_unreadable_vector():
    with pytest.raises(DataError, match="cannot read str"):
        zoo.create_model(towers={"x": {"modality": "vector", "encoder": "mlp"}}, embed_dim=4).preprocess("x", ["abc"])
