"""What tests import (constants and assertions); fixtures stay in the conftest.py files.

``tests/`` is on ``sys.path`` because the root ``conftest.py`` lives there (pytest's default ``prepend``
import mode), so any test below it writes ``from helpers import QUICK``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"

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


# -- the pretrained sources' inputs (tests/plugins/test_pretrained*.py) ----------------------------------------
TEXTS = ["a photo of a cat", "Two dogs!", "the number seven", "x"]
ATOL = 1e-5


def close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=0)


def images(n: int = 3, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sizes = [(3, 32, 32), (3, 40, 48), (1, 32, 32), (3, 32, 32)]
    return [torch.rand(*sizes[i % len(sizes)], generator=g) for i in range(n)]


# -- a modality's registered load and collate ----------------------------------------------------------------
def load_raws(modality: str, raws: list) -> list:
    """Each raw input read by the modality's ``load`` (what a dataset item or a path becomes)."""
    entry = _modality(modality)
    return [entry.factory(r) for r in raws]


def collate(modality: str, loaded: list):
    """A batch of loaded raws, as the modality's ``collate`` stacks them."""
    entry = _modality(modality)
    own = getattr(entry.factory, "collate", None)   # a ModalitySpec, or the load function with meta["collate"]
    return own(loaded) if own is not None else entry.meta["collate"](loaded)


def _modality(name: str):
    import zoo
    return zoo.registry().get("modalities", name)
