"""Every registered objective gives a finite scalar and gradients for every view and the temperature (unless
its spec says it has none) on random unit embeddings of the views it requires (``tiny_specs.OBJECTIVES``)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_specs import OBJECTIVES

import zoo

NAMES = zoo.list_objectives()


def test_every_registered_objective_has_a_tiny_spec():
    missing = sorted(set(NAMES) - set(OBJECTIVES))
    assert not missing, f"add the views (and options) of {missing} to tests/tiny_specs.py OBJECTIVES"


@pytest.mark.parametrize("name", NAMES)
def test_objective_gives_a_finite_scalar_and_gradients(name):
    spec = OBJECTIVES[name]
    g = torch.Generator().manual_seed(0)
    leaves = {v: torch.randn(8, 6, generator=g, dtype=torch.float64, requires_grad=True) for v in spec["views"]}
    scale = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    labels = {"label": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])} if spec.get("labels") else None
    objective = zoo.create_objective(name, **spec.get("options", {}))
    kw = {"logit_bias": torch.tensor(-1.0, dtype=torch.float64)} if name == "siglip" else {}
    loss = objective({v: F.normalize(x, dim=-1) for v, x in leaves.items()}, logit_scale=scale, labels=labels, **kw)
    assert loss.dim() == 0 and torch.isfinite(loss), loss
    grads = torch.autograd.grad(loss, [*leaves.values(), scale], allow_unused=True)
    for view, grad in zip([*leaves, "logit_scale"], grads):
        if view == "logit_scale" and not spec.get("temperature", True):
            assert grad is None, f"{name} uses the temperature: drop temperature=False from its spec"
            continue
        assert grad is not None and torch.isfinite(grad).all(), (name, view)
    assert any(g.abs().sum() > 0 for g in grads[:-1]), name
