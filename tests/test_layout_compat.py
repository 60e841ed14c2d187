"""The layer packages changed no behaviour: a run written by the flat layout (tests/fixtures/run-before-layers,
made at commit 58896ea) loads to the same embeddings and resumes exactly, and the old import paths still work."""
from __future__ import annotations

import importlib
import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo._moved import MOVED

FIXTURE = Path(__file__).parent / "fixtures" / "run-before-layers"


def test_model_saved_before_the_move_loads_to_the_same_embeddings():
    expected = json.loads((FIXTURE.parent / "run-before-layers.expected.json").read_text())
    model = zoo.load(f"local-dir:{FIXTURE}")
    x = torch.randn(*expected["input_shape"], generator=torch.Generator().manual_seed(expected["input_seed"]))
    for tower in ("x", "y"):
        torch.testing.assert_close(model.encode(tower, x), torch.tensor(expected[tower]), atol=1e-6, rtol=1e-5)


def test_checkpoint_written_before_the_move_resumes_exactly(tmp_path):
    """Resume the old run from its step-2 checkpoint: it must end at the weights the old code wrote at step 4."""
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    shutil.rmtree(run / "checkpoints" / "step-00000004")
    for name in ("model.safetensors", "MANIFEST", "results.json", "config.json", "README.md"):
        (run / name).unlink()
    (run / "metrics.jsonl").write_text("")  # nothing was logged up to step 2 (log_every = 10)
    from zoo.cli import main
    assert main(["train", "--resume", str(run), "--set", "run.progress=false"]) in (0, None)
    old, new = load_file(FIXTURE / "model.safetensors"), load_file(run / "model.safetensors")
    assert old.keys() == new.keys()
    for k in old:
        torch.testing.assert_close(new[k], old[k], atol=1e-6, rtol=1e-5, msg=k)
    assert json.loads((run / "results.json").read_text())["steps"] == 4
    assert [json.loads(r)["loss"] for r in (run / "metrics.jsonl").read_text().splitlines()] == pytest.approx(
        [json.loads(r)["loss"] for r in (FIXTURE / "metrics.jsonl").read_text().splitlines()], abs=1e-6)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_import_path_is_the_new_module_with_a_deprecation_warning(old):
    new = MOVED[old]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.invalidate_caches()
        import sys
        sys.modules.pop(old, None)
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)
    if isinstance(new, str):
        assert module is importlib.import_module(new)
        assert module.__spec__.name == new  # the real module keeps its own spec
    else:
        for part in new:
            public = [k for k in vars(importlib.import_module(part)) if not k.startswith("_")]
            assert all(getattr(module, k) is getattr(importlib.import_module(part), k) for k in public)
