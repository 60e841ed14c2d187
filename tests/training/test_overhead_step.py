"""The step reads its loss from the device once: the NaN check's value is the loss the trainer returns
and logs (no second read after the optimizer step), for the plain path and GradCache's chunks."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers import QUICK

from zoo.recipes import load_recipe
from zoo.training.trainer import Trainer

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"


@pytest.mark.parametrize("chunk", [0, 16])
def test_train_step_returns_the_value_the_nan_check_read(tmp_path, chunk):
    t = Trainer(load_recipe(QUICKSTART, {**QUICK, "data.batch_size": 32, "run.grad_cache_chunk": chunk}),
                run_dir=tmp_path / "run")
    try:
        batch = next(iter(t.batches()))
        loss = t.forward_backward(batch)
        assert t.forward_backward.value == loss.item()  # the same float, bit for bit
        t.optimizer.zero_grad(set_to_none=True)
        value = t.train_step(batch)
        assert value == t.forward_backward.value and value == value  # finite, and what train_step hands on
    finally:
        t.close()
