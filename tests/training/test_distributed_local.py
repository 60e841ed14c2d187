"""The local-loss path of clip and siglip under torchrun (gloo, 2 and 4 CPU processes).

Each rank evaluates only its own rows against the gathered columns; the loss and the
DDP-combined gradients must equal the single-process ones, and the per-rank peak memory of the
loss must not grow with the world size (the gather-everything path's does, as (world·b)²).
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import dist_local_worker as worker
import pytest
import torch
from helpers import assert_same_training

import zoo
import zoo.training.step
import zoo.training.trainer
from zoo.objectives._per_rank import clip_local, siglip_local
from zoo.recipes import load_recipe
from zoo.training.distributed import DistInfo

HERE = Path(__file__).resolve().parent
QUICKSTART = HERE.parents[1] / "recipes" / "quickstart.toml"


def _torchrun(args: list[str], cwd: Path, nproc: int = 2, env: dict | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {}),
           "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), *args]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=cwd)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]


@functools.cache
def _worker_results(world: int) -> dict:
    """One torchrun launch of the worker per world size, shared by the tests below."""
    with tempfile.TemporaryDirectory() as tmp:
        _torchrun([str(HERE / "dist_local_worker.py"), str(Path(tmp) / "out.json")], Path(tmp), nproc=world,
                  env={"ZOO_DISABLE_PLUGIN_AUTOLOAD": "1"})  # the objectives are core: skip plugin imports
        return json.loads((Path(tmp) / "out.json").read_text())


def _single_process(name: str):
    objective, kw, _ = worker.CASES[name]
    views, scale, bias, mask = worker.case_inputs(name)
    views = [v.clone().requires_grad_(True) for v in views]
    scale, bias = scale.clone().requires_grad_(True), bias.clone().requires_grad_(True)
    loss = zoo.create_objective(objective, **kw)({"v0": views[0], "v1": views[1]}, logit_scale=scale,
                                                 logit_bias=bias, mask=mask)
    loss.backward()
    return loss, views, scale, bias


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("name", list(worker.CASES))
def test_local_path_equals_single_process(world, name):
    got = _worker_results(world)["parity"][name]
    loss, views, scale, bias = _single_process(name)
    assert got["loss"] == pytest.approx(loss.item(), abs=1e-6)
    for x, grad in zip(views, got["grads"]):
        torch.testing.assert_close(torch.tensor(grad, dtype=torch.float64), x.grad, atol=1e-6, rtol=0)
    assert got["scale_grad"] == pytest.approx(scale.grad.item(), abs=1e-6)
    if worker.CASES[name][0] == "siglip":
        assert got["bias_grad"] == pytest.approx(bias.grad.item(), abs=1e-6)


def test_local_path_memory_does_not_grow_with_world():
    """Per-rank peak bytes of forward + backward of the loss at b = 64 rows per rank (float64, D = 4,
    64 columns per block), world 2 vs 4. The local path holds (b, block) blocks plus O(N·D) vectors
    (the gathered columns' gradient); the gather-everything path holds (N, N) logits."""
    two, four = _worker_results(2)["peak_bytes"], _worker_results(4)["peak_bytes"]
    print("\nper-rank peak bytes of the loss (b=64 rows/rank):  world 2 → world 4 (ratio)")
    for key in two:
        print(f"  {key:14s} {two[key]:>9,d} → {four[key]:>9,d}  ({four[key] / two[key]:.2f}×)")
    for objective in ("clip", "siglip"):
        assert four[f"{objective}/local"] < 1.2 * two[f"{objective}/local"], objective
        assert four[f"{objective}/global"] > 3.0 * two[f"{objective}/global"], objective
        assert four[f"{objective}/local"] < four[f"{objective}/global"] / 5


def test_trainer_takes_the_local_path_when_the_objective_has_one(monkeypatch, tmp_path):
    recipe = load_recipe(QUICKSTART, {"run.progress": False, "data.options.size": 64, "data.batch_size": 16})
    t = zoo.training.trainer.Trainer(recipe, run_dir=tmp_path)
    batch = next(iter(t.loader))
    calls = []
    monkeypatch.setattr(zoo.training.step, "local_loss", lambda *a, **kw: calls.append(a) or torch.tensor(1.0))
    fb = t.forward_backward
    fb.loss(fb.encode(batch.views), batch)
    assert not calls  # one process: the plain objective
    fb.dist = DistInfo(rank=0, world=2)
    assert fb.loss(fb.encode(batch.views), batch).item() == 1.0 and len(calls) == 1


def test_one_process_local_functions_equal_the_objectives():
    """With one rank (offset 0, gathered = local) the local functions are the objectives; gradcheck."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.nn.functional.normalize(torch.randn(7, 3, generator=g, dtype=torch.float64), dim=-1)
            .requires_grad_(True) for _ in range(2))
    s, t = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (6.0, -2.0))
    mask = {"a": torch.tensor([1, 1, 0, 1, 1, 1, 0], dtype=torch.bool)}
    emb = {"a": a, "b": b}
    for chunk in (None, 2):
        clip = zoo.create_objective("clip", label_smoothing=0.1, chunk_size=chunk)
        sig = zoo.create_objective("siglip", chunk_size=chunk)
        torch.testing.assert_close(clip.forward_local(emb, emb, 0, logit_scale=s, mask=mask),
                                   clip(emb, logit_scale=s, mask=mask), atol=1e-12, rtol=0)
        torch.testing.assert_close(sig.forward_local(emb, emb, 0, logit_scale=s, logit_bias=t, mask=mask),
                                   sig(emb, logit_scale=s, logit_bias=t, mask=mask), atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(lambda a, b, s: clip_local({"a": a, "b": b}, {"a": a, "b": b}, 0, s,
                                                               label_smoothing=0.1, chunk_size=3), (a, b, s))
    assert torch.autograd.gradcheck(lambda a, b, s, t: siglip_local({"a": a, "b": b}, {"a": a, "b": b}, 0, s, t,
                                                                    chunk_size=3), (a, b, s, t))


def test_local_path_errors_name_the_problem():
    x = torch.randn(4, 3)
    with pytest.raises(zoo.ShapeError, match="rank_offset expected in"):
        clip_local({"a": x, "b": x}, {"a": x, "b": x}, 1, 10.0)
    with pytest.raises(zoo.ShapeError, match="same views"):
        clip_local({"a": x, "b": x}, {"b": x, "a": x}, 0, 10.0)
    with pytest.raises(zoo.ShapeError, match="gathered shape"):
        clip_local({"a": x, "b": x}, {"a": x, "b": x}, 0, 10.0, mask={"a": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="logit_bias"):
        siglip_local({"a": x, "b": x}, {"a": x, "b": x}, 0, 10.0, None)


def test_torchrun_siglip_training_with_gradcache_matches_one_process(tmp_path):
    """The trainer's local path end to end: siglip + GradCache chunks on 2 ranks = one process."""
    sets = ["run.steps=3", "optim.warmup_steps=3", "run.log_every=1", "run.progress=false", "data.options.size=128",
            "data.batch_size=32", "objective.name=siglip", "model.logit_bias=-10.0", "run.grad_cache_chunk=8"]
    _torchrun(["-m", "zoo.cli", "train", str(QUICKSTART), "--run-dir", str(tmp_path / "ddp"),
               *[f"--set={s}" for s in sets]], tmp_path, env={"ZOO_DISABLE_PLUGIN_AUTOLOAD": "1"})
    single = zoo.train(QUICKSTART, overrides=sets, run_dir=tmp_path / "single")
    assert_same_training(tmp_path / "ddp", single.run_dir)
