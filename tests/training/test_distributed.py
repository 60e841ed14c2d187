"""Two CPU processes (gloo, torchrun) give the single-process loss and gradients."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import assert_same_training, logged_losses
from safetensors.torch import load_file

import zoo
from zoo.data.datasets import EpochSampler

HERE = Path(__file__).resolve().parent
QUICKSTART = HERE.parents[1] / "recipes" / "quickstart.toml"


def _torchrun(args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]


def test_objectives_on_gathered_embeddings_equal_single_process(tmp_path):
    _torchrun([str(HERE / "dist_worker.py"), str(tmp_path / "out.json")], tmp_path)
    results = json.loads((tmp_path / "out.json").read_text())
    for name, (views, kw) in {"clip": (2, {}), "siglip": (2, {}), "symile": (3, {"negative_sampling": "n_squared"})}.items():
        g = torch.Generator().manual_seed(0)
        full = [torch.nn.functional.normalize(torch.randn(16, 8, generator=g, dtype=torch.float64), dim=-1)
                .requires_grad_(True) for _ in range(views)]
        scale = torch.tensor(10.0, dtype=torch.float64, requires_grad=True)
        bias = torch.tensor(-5.0, dtype=torch.float64, requires_grad=True)
        loss = zoo.create_objective(name, **kw)({f"v{i}": x for i, x in enumerate(full)}, logit_scale=scale,
                                                logit_bias=bias)
        loss.backward()
        got = results[name]
        assert got["loss"] == pytest.approx(loss.item(), abs=1e-6), name
        for x, gr in zip(full, got["grads"]):
            torch.testing.assert_close(torch.tensor(gr, dtype=torch.float64), x.grad, atol=1e-6, rtol=0)
        assert got["scale_grad"] == pytest.approx(scale.grad.item(), abs=1e-6)
        if bias.grad is not None:
            assert got["bias_grad"] == pytest.approx(bias.grad.item(), abs=1e-6)


def test_torchrun_training_matches_one_process_on_the_global_batch(tmp_path):
    sets = ["run.epochs=1", "optim.warmup_steps=2", "run.log_every=1", "run.progress=false", "data.options.size=256",
            "data.batch_size=64", "run.checkpoint_every=2"]
    _torchrun(["-m", "zoo.cli", "train", str(QUICKSTART), "--run-dir", str(tmp_path / "ddp"),
               *[f"--set={s}" for s in sets]], tmp_path)
    single = zoo.train(QUICKSTART, overrides=sets, run_dir=tmp_path / "single")
    assert_same_training(tmp_path / "ddp", single.run_dir)
    # a checkpoint written by 2 ranks resumes in one process at the same step
    t = zoo.training.trainer.Trainer(zoo.recipes.load_recipe(QUICKSTART, sets), run_dir=tmp_path / "ddp", resume=True)
    assert t.state.step == 4


def test_torchrun_with_loader_workers_kept_over_epochs_matches_one_process(tmp_path):
    """2 ranks × 1 persistent worker each, 3 epochs of the quickstart (its noise augmentation drawn in the workers
    from the epoch the indices carry) = one process with no worker."""
    sets = ["run.epochs=3", "optim.warmup_steps=2", "run.log_every=1", "run.progress=false", "data.options.size=256",
            "data.batch_size=64"]
    _torchrun(["-m", "zoo.cli", "train", str(QUICKSTART), "--run-dir", str(tmp_path / "ddp"),
               *[f"--set={s}" for s in [*sets, "data.num_workers=1"]]], tmp_path)
    single = zoo.train(QUICKSTART, overrides=sets, run_dir=tmp_path / "single")
    assert_same_training(tmp_path / "ddp", single.run_dir)


def test_ranks_see_the_single_process_batches():
    one = EpochSampler(40, seed=3, world=1, batch=8).order()
    ranks = [EpochSampler(40, seed=3, rank=r, world=2, batch=4).order() for r in range(2)]
    for k in range(5):
        assert ranks[0][4 * k:4 * k + 4] + ranks[1][4 * k:4 * k + 4] == one[8 * k:8 * k + 8]


def test_fsdp_training_matches_one_process_and_resumes_across_modes(tmp_path):
    """run.fsdp = true shards the towers over 2 ranks: same losses and weights as one process;
    its checkpoints resume in one process, and one process's resume under FSDP (optimizer state included)."""
    sets = ["run.epochs=1", "optim.warmup_steps=2", "run.log_every=1", "run.progress=false", "data.options.size=256",
            "data.batch_size=64", "run.checkpoint_every=2", "run.keep_checkpoints=5"]
    fsdp = [*sets, "run.fsdp=true"]
    cli = ["-m", "zoo.cli", "train", str(QUICKSTART)]
    single = zoo.train(QUICKSTART, overrides=sets, run_dir=tmp_path / "single")
    _torchrun([*cli, "--run-dir", str(tmp_path / "fsdp"), *[f"--set={s}" for s in fsdp]], tmp_path)
    assert_same_training(single.run_dir, tmp_path / "fsdp")
    assert len(logged_losses(tmp_path / "fsdp")) == 4
    assert json.loads((tmp_path / "fsdp" / "results.json").read_text())["steps"] == 4

    # FSDP checkpoint at step 2 → one process finishes the run
    shutil.copytree(tmp_path / "fsdp" / "checkpoints" / "step-00000002", tmp_path / "a" / "checkpoints" / "step-00000002")
    zoo.train(QUICKSTART, overrides=sets, run_dir=tmp_path / "a", resume=True)
    assert_same_training(single.run_dir, tmp_path / "a", losses=False)

    # one process's checkpoint at step 2 → 2 FSDP ranks finish the run
    shutil.copytree(single.run_dir / "checkpoints" / "step-00000002", tmp_path / "b" / "checkpoints" / "step-00000002")
    _torchrun([*cli, "--resume", str(tmp_path / "b"), *[f"--set={s}" for s in fsdp]], tmp_path)
    assert_same_training(single.run_dir, tmp_path / "b", losses=False)


def test_fsdp_with_grad_cache_is_a_clear_error():
    with pytest.raises(zoo.RecipeError, match="grad_cache_chunk with run.fsdp"):
        zoo.training.trainer.Trainer(zoo.recipes.load_recipe(QUICKSTART, ["run.fsdp=true", "run.grad_cache_chunk=8"]))


def test_ddp_resume_continues_every_ranks_rng(tmp_path):
    """With dropout each rank draws its own masks: a 2-rank run resumed from its step-2 checkpoint
    ends at the uninterrupted 2-rank run's weights only if every rank's RNG streams were saved."""
    sets = ["run.epochs=1", "optim.warmup_steps=2", "run.log_every=1", "run.progress=false", "data.options.size=256",
            "data.batch_size=64", "run.checkpoint_every=2", "run.keep_checkpoints=5", "model.towers.x.dropout=0.3",
            "model.towers.y.dropout=0.3"]
    cli = ["-m", "zoo.cli", "train", str(QUICKSTART), *[f"--set={s}" for s in sets]]
    _torchrun([*cli, "--run-dir", str(tmp_path / "full")], tmp_path)
    step2 = tmp_path / "full" / "checkpoints" / "step-00000002"
    assert len(torch.load(step2 / "training.pt", weights_only=True)["rng_per_rank"]) == 2
    shutil.copytree(step2, tmp_path / "resumed" / "checkpoints" / step2.name)
    _torchrun([*cli, "--resume", str(tmp_path / "resumed")], tmp_path)
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_fsdp_siglip_local_loss_with_replicated_bias_matches_one_process(tmp_path):
    """SigLIP under FSDP: the local-loss path, and the temperature and bias kept whole on every rank
    with their gradients averaged, end at the single-process weights."""
    sets = ["run.epochs=1", "optim.warmup_steps=2", "run.progress=false", "data.options.size=256", "data.batch_size=64",
            "objective.name=siglip", "model.logit_bias=-10.0"]
    _torchrun(["-m", "zoo.cli", "train", str(QUICKSTART), "--run-dir", str(tmp_path / "fsdp"),
               *[f"--set={s}" for s in [*sets, "run.fsdp=true"]]], tmp_path)
    single = zoo.train(QUICKSTART, overrides=sets, run_dir=tmp_path / "single")
    assert_same_training(single.run_dir, tmp_path / "fsdp", losses=False)
