"""Every registered encoder maps a batch of its modality to ``(B, output_dim)``, finite, with gradients.

Parametrised over the registry at collection time; the tiny configuration of each comes from
``tiny_specs`` (the pretrained plugin's encoders: a tiny checkpoint in the wrapped library's own layout,
loaded offline). ``test_every_registered_encoder_has_a_tiny_spec`` fails for an encoder without one.
"""
from __future__ import annotations

import pytest
import torch
from helpers import collate, load_raws
from tiny_specs import ENCODERS, PRETRAINED, raws

import zoo
from zoo_pretrained import testing as T

BUILT = [e.qualname for e in zoo.registry().entries("encoders") if e.plugin != "pretrained"]
WRAPPED = [e.qualname for e in zoo.registry().entries("encoders") if e.plugin == "pretrained"]


def cases_of(qualname: str) -> list[tuple[str, str, dict]]:
    return [(m, e, kw) for m, e, kw in ENCODERS if f"{m}/{e.split(':')[0]}" == qualname]


def batch_for(encoder: torch.nn.Module, modality: str, n: int = 3):
    """What the tower does: the modality loads each raw; the encoder's own ``preprocess`` or the
    modality's ``collate`` batches them."""
    loaded = load_raws(modality, raws(modality, n))
    own = getattr(encoder, "preprocess", None)
    return own(loaded) if own is not None else collate(modality, loaded)


def check_output(encoder: torch.nn.Module, batch, n: int, what: str) -> None:
    out = encoder(batch)
    assert out.shape == (n, encoder.output_dim), (what, tuple(out.shape), encoder.output_dim)
    assert torch.isfinite(out).all(), what
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    if trainable:
        out.float().square().sum().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable), what


def test_every_registered_encoder_has_a_tiny_spec():
    missing = [q for q in BUILT if not cases_of(q)]
    assert not missing, f"add a tiny configuration to tests/tiny_specs.py ENCODERS for {missing}"
    wrapped = sorted(q for _, names in PRETRAINED.values() for q in names)
    assert wrapped == sorted(WRAPPED), "tests/tiny_specs.py PRETRAINED must list the pretrained plugin's encoders"


@pytest.mark.parametrize("qualname", BUILT)
def test_encoder_maps_a_batch_to_output_dim(qualname):
    for modality, encoder, kw in cases_of(qualname):
        torch.manual_seed(0)
        enc = zoo.create_encoder(modality, encoder, **kw).train()
        check_output(enc, batch_for(enc, modality), 3, f"{encoder} {kw}")


@pytest.mark.parametrize("key", sorted(PRETRAINED))
def test_wrapped_encoders_map_a_batch_to_output_dim(key, tmp_path):
    prefix, names = PRETRAINED[key]
    model = zoo.load(f"{prefix}:{getattr(T, f'make_{key}_dir')(tmp_path / key)}")
    assert sorted(f"{t.config.modality}/{t.config.encoder}" for t in model.towers.values()) == sorted(names)
    for tower in model.towers.values():
        n = 2
        batch = tower.preprocess(raws(tower.config.modality, n))
        check_output(tower.encoder, batch, n, f"{key}/{tower.config.encoder}")
