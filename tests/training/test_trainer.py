"""The trainer: a CPU smoke run whose loss goes down, checkpoints, exact resume, failures."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import QUICK, logged_losses
from safetensors.torch import load_file

import zoo
from zoo.errors import DataError, RecipeError
from zoo.recipes import load_recipe
from zoo.training.checkpoints import complete_checkpoints
from zoo.training.trainer import NonFiniteLossError, Trainer, train

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"


def test_smoke_training_loss_goes_down(tmp_path):
    result = train(QUICKSTART, overrides={**QUICK, "run.epochs": 3}, run_dir=tmp_path / "run")
    losses = logged_losses(result.run_dir)
    assert len(losses) == 24 and sum(losses[-4:]) / 4 < 0.6 * sum(losses[:4]) / 4
    for name in ("config.json", "model.safetensors", "recipe.toml", "README.md", "results.json", "plots/training.png"):
        assert (result.run_dir / name).is_file(), name
    model = zoo.load(f"local-dir:{result.run_dir}")
    assert model.embed_dim == 32 and result.metrics["steps"] == 24
    assert load_recipe(result.run_dir / "recipe.toml").to_dict() == load_recipe(QUICKSTART, QUICK | {"run.epochs": 3}).to_dict()


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "model.safetensors")


@pytest.mark.parametrize("stop_at", [5, 8, 13])  # mid-epoch, at an epoch boundary, in the second epoch
def test_resume_ends_with_the_same_weights(tmp_path, stop_at):
    over = {**QUICK, "run.epochs": 2, "run.checkpoint_every": stop_at,
            "model.towers.x.dropout": 0.1, "model.towers.y.dropout": 0.1}  # dropout: the RNG state matters
    full = train(QUICKSTART, overrides=over, run_dir=tmp_path / "full")
    # interrupted run: stop right after the checkpoint at `stop_at`, then resume in a fresh Trainer
    part = Trainer(load_recipe(QUICKSTART, over), run_dir=tmp_path / "part")
    part.state.stop_at_step = stop_at
    assert part.fit().metrics["stopped_at"] == stop_at
    resumed = train(QUICKSTART, overrides=over, run_dir=tmp_path / "part", resume=True)
    a, b = _weights(full.run_dir), _weights(resumed.run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert logged_losses(full.run_dir) == logged_losses(resumed.run_dir)


def test_checkpoints_are_complete_and_pruned(tmp_path):
    train(QUICKSTART, overrides={**QUICK, "run.checkpoint_every": 2, "run.keep_checkpoints": 2}, run_dir=tmp_path)
    kept = complete_checkpoints(tmp_path / "checkpoints")
    assert [p.name for p in kept] == ["step-00000006", "step-00000008"]
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no temporary directories left
    (kept[-1] / "MANIFEST").unlink()  # a checkpoint without a manifest does not count
    assert complete_checkpoints(tmp_path / "checkpoints") == kept[:1]


def test_freeze_keeps_a_tower_fixed(tmp_path):
    over = {**QUICK, "model.freeze": ["towers.y"]}
    t = Trainer(load_recipe(QUICKSTART, over), run_dir=tmp_path)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.fit()
    after = t.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("towers.y."))
    assert not torch.equal(before["towers.x.projection.weight"], after["towers.x.projection.weight"])
    with pytest.raises(RecipeError, match="no parameter starts with 'towers.z'"):
        Trainer(load_recipe(QUICKSTART, {**QUICK, "model.freeze": ["towers.z"]}), run_dir=tmp_path / "z")


def test_non_finite_loss_stops_with_step_and_objective(tmp_path):
    t = Trainer(load_recipe(QUICKSTART, QUICK), run_dir=tmp_path)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.objective.forward = lambda *a, **k: torch.tensor(float("nan"), requires_grad=True)
    with pytest.raises(NonFiniteLossError, match="step 0: objective 'clip' returned nan"):
        t.fit()
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())


def test_batch_larger_than_dataset(tmp_path):
    with pytest.raises(DataError, match="larger than dataset"):
        train(QUICKSTART, overrides={**QUICK, "data.batch_size": 1000}, run_dir=tmp_path)


def test_unknown_objective_and_dataset_in_recipe(tmp_path):
    with pytest.raises(zoo.UnknownNameError, match="'clip'"):
        train(QUICKSTART, overrides={**QUICK, "objective.name": "clp"}, run_dir=tmp_path)
    with pytest.raises(zoo.UnknownNameError, match="synthetic-pairs"):
        train(QUICKSTART, overrides={**QUICK, "data.dataset": "synthetic-pair"}, run_dir=tmp_path)


def test_objective_that_needs_labels_the_dataset_lacks(tmp_path):
    with pytest.raises(zoo.ShapeError, match="labels\\['species'\\]"):
        train(QUICKSTART, overrides={**QUICK, "objective.name": "supcon",
                                     "objective.options.label": "species"}, run_dir=tmp_path)


def test_nonfinite_loss_skip_option_skips_the_batch_and_counts(tmp_path):
    """run.on_nonfinite = "skip": a NaN batch leaves weights and optimizer untouched, is counted,
    logged and reported; past run.max_skips training stops with the same error."""
    t = Trainer(load_recipe(QUICKSTART, {**QUICK, "run.on_nonfinite": "skip", "run.max_skips": 1}), run_dir=tmp_path)
    batches = t.batches()
    t.train_step(next(batches))
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    adam_steps = [s["step"].clone() for s in t.optimizer.state.values()]
    lr = t.scheduler.get_last_lr()[0]
    real = t.objective.forward
    t.objective.forward = lambda *a, **k: torch.tensor(float("inf"), requires_grad=True)
    assert math.isnan(t.train_step(next(batches))) and t.state.skipped == 1
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    assert [s["step"] for s in t.optimizer.state.values()] == adam_steps and t.scheduler.get_last_lr()[0] != lr
    with pytest.raises(NonFiniteLossError, match="2 batches skipped, more than run.max_skips = 1"):
        t.train_step(next(batches))
    t.objective.forward = real
    t.train_step(next(batches))
    assert all(torch.isfinite(v).all() for v in t.model.state_dict().values())


def test_nonfinite_skip_is_reported_in_metrics_and_results(tmp_path):
    t = Trainer(load_recipe(QUICKSTART, {**QUICK, "run.on_nonfinite": "skip", "run.log_every": 1}), run_dir=tmp_path)
    real, calls = t.objective.forward, []

    def nan_on_third_call(*a, **k):
        calls.append(1)
        return torch.tensor(float("nan"), requires_grad=True) if len(calls) == 3 else real(*a, **k)

    t.objective.forward = nan_on_third_call
    result = t.fit()
    lines = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert math.isnan(lines[2]["loss"]) and lines[2]["skipped"] == 1 and lines[1]["skipped"] == 0
    assert result.metrics["skipped_batches"] == 1
    assert json.loads((tmp_path / "results.json").read_text())["skipped_batches"] == 1


def test_on_nonfinite_must_be_stop_or_skip():
    with pytest.raises(RecipeError, match="on_nonfinite"):
        load_recipe(QUICKSTART, {"run.on_nonfinite": "ignore"})


def test_siglip_without_a_logit_bias_is_a_recipe_error_before_training(tmp_path):
    with pytest.raises(RecipeError, match=r"needs a learnable logit bias.*model.logit_bias = -10"):
        Trainer(load_recipe(QUICKSTART, {**QUICK, "objective.name": "siglip"}), run_dir=tmp_path)
    t = Trainer(load_recipe(QUICKSTART, {**QUICK, "objective.name": "siglip", "model.logit_bias": -10.0}),
                run_dir=tmp_path)
    assert math.isfinite(t.train_step(next(t.batches())))
