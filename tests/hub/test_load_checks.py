"""zoo.load checks a saved model before trusting it or allocating it: config values, sizes against the
machine's memory, the weights header against the architecture (on the meta device), SHA-256 MANIFEST."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from zoo.errors import CheckpointError


@pytest.fixture
def saved(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "ck")
    return tmp_path / "ck"


def _edit(ck, change) -> None:
    cfg = json.loads((ck / "config.json").read_text())
    change(cfg)
    (ck / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("value", [float("nan"), 0.0, -1.0, "big"])
def test_max_logit_scale_must_be_finite_and_positive(saved, value):
    _edit(saved, lambda c: c["model"].__setitem__("max_logit_scale", value))
    with pytest.raises(CheckpointError, match="max_logit_scale"):
        zoo.load(f"local-dir:{saved}")


def test_format_version_must_be_a_sane_integer(saved):
    text = (saved / "config.json").read_text().replace('"format_version": 1', '"format_version": 1e400')
    (saved / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match="format_version"):
        zoo.load(f"local-dir:{saved}")


def test_deeply_nested_json_is_a_checkpoint_error(saved):
    (saved / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        zoo.load(f"local-dir:{saved}")


def test_a_model_bigger_than_the_machine_is_refused_before_it_is_built(saved, monkeypatch):
    _edit(saved, lambda c: c["model"]["towers"]["x"]["encoder_kwargs"].__setitem__("hidden", 200_000))
    built = []
    real = zoo.model.ContrastiveModel.__init__

    def spy(self, *a, **k):
        real(self, *a, **k)
        built.append(next(self.parameters()).device.type)
    monkeypatch.setattr(zoo.model.ContrastiveModel, "__init__", spy)
    monkeypatch.setattr("zoo.hub.integrity.machine_memory", lambda: 2**20)  # a 1 MiB machine
    with pytest.raises(CheckpointError, match="GiB of parameters"):
        zoo.load(f"local-dir:{saved}")
    assert built == ["meta"]  # estimated on the meta device, never allocated


def test_weights_that_disagree_with_the_config_are_refused_before_building(saved, monkeypatch):
    state = load_file(saved / "model.safetensors")
    state["logit_scale"] = torch.tensor(3, dtype=torch.int64)  # an integer where the model has a float
    save_file(state, saved / "model.safetensors")
    (saved / "MANIFEST").unlink()
    with pytest.raises(CheckpointError, match="dtype mismatches.*logit_scale"):
        zoo.load(f"local-dir:{saved}")


def test_a_corrupt_file_fails_its_sha256(saved, tmp_path):
    zoo.load(f"local-dir:{saved}")
    weights, config = tmp_path / "weights", tmp_path / "config"
    shutil.copytree(saved, weights)
    data = bytearray((weights / "model.safetensors").read_bytes())
    data[-6] ^= 0xFF  # in the tensor data: the header still parses, the shapes still fit
    (weights / "model.safetensors").write_bytes(bytes(data))
    shutil.copytree(saved, config)
    _edit(config, lambda c: c.__setitem__("zoo_version", "0.0.0-edited"))
    for d, victim in ((weights, "model.safetensors"), (config, "config.json")):
        with pytest.raises(CheckpointError, match=f"{victim} is corrupt"):
            zoo.load(f"local-dir:{d}")
