"""ContrastiveModel: encode, preprocess, save → load round trip, strict loading."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from zoo.errors import CheckpointError, ShapeError, UnknownNameError


def _x(n=5):
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(1))


def test_encode_is_normalised_with_the_shared_dim(tiny_model):
    z = tiny_model.encode("x", _x())
    assert z.shape == (5, 8)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(5))
    raw = tiny_model.encode("x", _x(), normalize=False)
    torch.testing.assert_close(torch.nn.functional.normalize(raw, dim=-1), z)


def test_preprocess_loads_and_collates(tiny_model):
    batch = tiny_model.preprocess("y", [[0.5] * 16, torch.zeros(16)])
    assert batch.shape == (2, 16) and batch.dtype == torch.float32
    with pytest.raises(ShapeError, match="one length"):
        tiny_model.preprocess("y", [[0.5] * 16, [1.0] * 3])


def test_unknown_tower_names_the_towers(tiny_model):
    with pytest.raises(UnknownNameError, match="towers for: x, y"):
        tiny_model.encode("image", _x())


def test_wrong_input_shape_is_a_shape_error(tiny_model):
    with pytest.raises(ShapeError, match=r"expected input \(B, 16\), got \(5, 3\)"):
        tiny_model.encode("x", torch.zeros(5, 3))


def test_levels_are_projected(tiny_model):
    m = zoo.create_model(towers={"x": {"modality": "vector", "encoder": "mlp", "in_dim": 16, "layers": 3,
                                       "levels": ["layer1", "layer2"]}}, embed_dim=8)
    out = m.encode_levels("x", _x())
    assert set(out) == {"layer1", "layer2", "final"} and all(v.shape == (5, 8) for v in out.values())
    torch.testing.assert_close(out["final"], m.encode("x", _x()))
    with pytest.raises(UnknownNameError, match="layer9"):
        zoo.create_model(towers={"x": {"modality": "vector", "encoder": "mlp", "levels": ["layer9"]}}, embed_dim=8)


def test_save_load_round_trip(tiny_model, tmp_path):
    with torch.no_grad():
        tiny_model.logit_scale.fill_(3.0)
    tiny_model.save_pretrained(tmp_path / "ck")
    assert {p.name for p in (tmp_path / "ck").iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    loaded = zoo.load(f"local-dir:{tmp_path / 'ck'}")
    assert loaded.source.startswith("local-dir:") and not loaded.training
    for key in ("x", "y"):
        torch.testing.assert_close(loaded.encode(key, _x()), tiny_model.eval().encode(key, _x()), atol=1e-6, rtol=0)
    assert loaded.logit_scale.item() == 3.0
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["model"]["towers"]["x"]["encoder_kwargs"] == {"in_dim": 16, "out_dim": 24}
    assert "zoo.data.vector" in config["plugins"]


def test_pretrained_false_builds_architecture_only(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    m = zoo.load(f"local-dir:{tmp_path}", pretrained=False)
    assert "random weights" in m.source
    assert not torch.allclose(m.encode("x", _x()), tiny_model.encode("x", _x()))


def test_loading_is_strict_and_names_keys(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state.pop("towers.x.projection.weight")
    state["towers.z.extra"] = torch.zeros(1)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing keys \[towers.x.projection.weight\].*unexpected keys \[towers.z.extra\]"):
        zoo.load(f"local-dir:{tmp_path}")


def test_truncated_weights_and_newer_format_are_checkpoint_errors(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        zoo.load(f"local-dir:{tmp_path}")
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["format_version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="Upgrade"):
        zoo.load(f"local-dir:{tmp_path}")
    with pytest.raises(CheckpointError, match="not a zoo checkpoint"):
        zoo.load(f"local-dir:{tmp_path / 'nowhere'}")


def test_unprefixed_path_is_rejected_with_the_prefixes(tmp_path):
    with pytest.raises(UnknownNameError, match="local-dir:"):
        zoo.load(str(tmp_path))
    with pytest.raises(UnknownNameError, match="Did you mean"):
        zoo.load("local-dri:x")


def test_bad_model_configs():
    with pytest.raises(zoo.RecipeError, match="needs an 'encoder'"):
        zoo.create_model(towers={"x": {"modality": "vector"}}, embed_dim=8)
    with pytest.raises(ShapeError, match="projection 'none'"):
        zoo.create_model(towers={"x": {"modality": "vector", "encoder": "mlp", "projection": "none"}}, embed_dim=8)
