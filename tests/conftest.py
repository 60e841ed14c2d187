"""Shared fixtures: tiny models on the core's `vector` modality, isolated plugin managers."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(1)


@pytest.fixture
def fresh_plugins():
    """A plugin manager rebuilt for the test and restored afterwards (tests may register plugins)."""
    from zoo import plugins
    saved = plugins._MANAGER
    plugins.reset_plugin_manager()
    yield plugins.get_plugin_manager()
    plugins._MANAGER = saved


@pytest.fixture
def tiny_model():
    import zoo
    torch.manual_seed(0)
    return zoo.create_model(towers={"x": {"modality": "vector", "encoder": "mlp", "in_dim": 16, "out_dim": 24},
                                    "y": {"modality": "vector", "encoder": "mlp", "in_dim": 16, "layers": 3}},
                            embed_dim=8)

