"""Shared fixtures: tiny models on the core's `vector` modality, isolated plugin managers."""
from __future__ import annotations

import json
import os
from pathlib import Path

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


QUICK = {"run.epochs": 1, "run.log_every": 1, "run.progress": False, "data.options.size": 256,
         "data.batch_size": 32, "optim.warmup_steps": 8}  # 8 steps: a warmup beyond the run is refused


def logged_losses(run_dir) -> list[float]:
    """The training losses a run logged to ``metrics.jsonl`` (evaluation lines skipped)."""
    rows = [json.loads(ln) for ln in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    return [r["loss"] for r in rows if "loss" in r]


def assert_same_training(run_a, run_b, *, losses: bool = True) -> None:
    """Two run directories ended at the same weights (2e-5) and, with ``losses``, logged the same losses."""
    from safetensors.torch import load_file
    a, b = load_file(Path(run_a) / "model.safetensors"), load_file(Path(run_b) / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=1e-4, msg=k)
    if losses:
        assert logged_losses(run_a) == pytest.approx(logged_losses(run_b), abs=1e-5)
