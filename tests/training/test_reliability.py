"""Faults: SIGKILL at random points, resume, and the same weights bit for bit; and the
control experiments showing that the test can fail (drop the RNG or the data position)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zoo.recipes import load_recipe
from zoo.training import checkpoints as ckpt_mod
from zoo.training.checkpointing import Checkpointer
from zoo.training.checkpoints import complete_checkpoints
from zoo.training.trainer import Trainer, train

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"
SETS = {"run.epochs": 3, "run.log_every": 1, "run.progress": False, "data.options.size": 512,
        "data.batch_size": 32, "run.checkpoint_every": 1, "run.keep_checkpoints": 2,
        "model.towers.x.dropout": 0.1, "model.towers.y.dropout": 0.1}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _cmd(run_dir: Path, resume: bool) -> list[str]:
    sets = [f"--set={k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in SETS.items()]
    where = ["--resume", str(run_dir)] if resume else ["--run-dir", str(run_dir)]
    return [sys.executable, "-m", "zoo.cli", "train", str(QUICKSTART), *where, *sets]


def _steps_logged(run_dir: Path) -> int:
    try:
        return len((run_dir / "metrics.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def _kill_at(run_dir: Path, step: int, resume: bool, rng: random.Random) -> int:
    """Start (or resume) training, SIGKILL it once ≥ ``step`` steps are logged plus a random delay."""
    proc = subprocess.Popen(_cmd(run_dir, resume), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while _steps_logged(run_dir) < step and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.03))  # land anywhere in a step, often inside a checkpoint write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


def test_sigkill_at_random_points_then_resume_gives_identical_weights(tmp_path):
    ref = train(QUICKSTART, overrides=SETS, run_dir=tmp_path / "ref", progress=False)
    run, rng = tmp_path / "killed", random.Random(7)
    for i, step in enumerate((3, 11, 20, 29)):
        _kill_at(run, step, resume=i > 0, rng=rng)
        for d in (run / "checkpoints").glob("step-*"):       # never a half-written checkpoint counted
            assert (d / "MANIFEST").exists() == (d in complete_checkpoints(run / "checkpoints"))
    done = subprocess.run(_cmd(run, resume=True), env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = load_file(ref.run_dir / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = lambda d: [json.loads(x)["loss"] for x in (d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert losses(run) == losses(ref.run_dir)


def _stop_and_resume(tmp_path, name: str, stop: int) -> dict[str, torch.Tensor]:
    over = {**SETS, "run.epochs": 2, "run.checkpoint_every": 0}
    t = Trainer(load_recipe(QUICKSTART, over), run_dir=tmp_path / name)
    t.state.stop_at_step = stop
    t.fit()
    train(QUICKSTART, overrides=over, run_dir=tmp_path / name, resume=True)
    return load_file(tmp_path / name / "model.safetensors")


def test_the_equality_test_can_fail(tmp_path, monkeypatch):
    """Controls: resuming without the RNG state, or without the data position, changes the weights."""
    over = {**SETS, "run.epochs": 2, "run.checkpoint_every": 0}
    ref = load_file(train(QUICKSTART, overrides=over, run_dir=tmp_path / "ref").run_dir / "model.safetensors")
    exact = _stop_and_resume(tmp_path, "exact", 7)
    assert all(torch.equal(ref[k], exact[k]) for k in ref)
    with monkeypatch.context() as m:
        m.setattr(ckpt_mod, "set_rng_state", lambda state: None)
        m.setattr("zoo.training.checkpointing.set_rng_state", lambda state: None)
        no_rng = _stop_and_resume(tmp_path, "no-rng", 7)
    assert not all(torch.equal(ref[k], no_rng[k]) for k in ref)
    original = Checkpointer.resume

    def forget_position(self):
        original(self)
        self.state.batch_in_epoch = 0   # as if the loader restarted its epoch

    with monkeypatch.context() as m:
        m.setattr(Checkpointer, "resume", forget_position)
        no_pos = _stop_and_resume(tmp_path, "no-position", 7)
    assert not all(torch.equal(ref[k], no_pos[k]) for k in ref)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_a_checkpoint_and_exit_cleanly(tmp_path, sig):
    run = tmp_path / "run"
    sets = {**SETS, "run.checkpoint_every": 0, "run.epochs": 50}
    cmd = _cmd(run, False)[:-len(SETS)] + [f"--set={k}={str(v).lower() if isinstance(v, bool) else v}"
                                           for k, v in sets.items()]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while _steps_logged(run) < 5 and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "stopped_at" in out and f"{sig.name}" in err
    (last,) = complete_checkpoints(run / "checkpoints")
    assert int(last.name.split("-")[1]) == json.loads(out[out.index("{"):out.index("}") + 1])["stopped_at"]


def test_a_prune_killed_half_way_never_leaves_a_counted_checkpoint_without_files(tmp_path, monkeypatch):
    """Pruning renames the old checkpoint away before deleting it: a kill inside the delete leaves
    only a hidden directory (cleared by the next save), never step-* with a manifest and missing files."""
    model, root = torch.nn.Linear(2, 2), tmp_path / "checkpoints"
    training = {"optimizer": {}, "rng": ckpt_mod.rng_state()}
    for step in (1, 2):
        ckpt_mod.save_checkpoint(root, step, model, training, {"step": step}, keep=2)
    real_rmtree = ckpt_mod.shutil.rmtree

    def killed_after_one_file(path, ignore_errors=False):
        files = sorted(Path(path).iterdir()) if Path(path).is_dir() else []
        if Path(path).name.startswith(".deleting-") and files:
            files[-1].unlink()          # deletes one file, then the process "dies"
            raise KeyboardInterrupt
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(ckpt_mod.shutil, "rmtree", killed_after_one_file)
    with pytest.raises(KeyboardInterrupt):
        ckpt_mod.save_checkpoint(root, 3, model, training, {"step": 3}, keep=2)
    monkeypatch.undo()
    assert [d.name for d in complete_checkpoints(root)] == ["step-00000002", "step-00000003"]
    assert sorted(d.name for d in root.glob("step-*")) == ["step-00000002", "step-00000003"]
    assert [d.name for d in root.glob(".deleting-*")] == [".deleting-step-00000001"]
    ckpt_mod.save_checkpoint(root, 4, model, training, {"step": 4}, keep=2)
    assert not list(root.glob(".*")) and [d.name for d in complete_checkpoints(root)] == ["step-00000003",
                                                                                          "step-00000004"]


def test_an_objectives_own_generator_resumes_exactly(tmp_path, monkeypatch):
    """MoCHi draws its mixing from its own generator: the checkpoint carries that generator's state,
    so a stopped and resumed run ends at the uninterrupted run's weights (and not without it)."""
    over = {**SETS, "run.epochs": 2, "run.checkpoint_every": 0, "objective.name": "mochi",
            "objective.options.n_hard": 16, "objective.options.n_mix": 8, "objective.options.n_mix_query": 4}
    ref = load_file(train(QUICKSTART, overrides=over, run_dir=tmp_path / "ref").run_dir / "model.safetensors")

    def stop_and_resume(name):
        t = Trainer(load_recipe(QUICKSTART, over), run_dir=tmp_path / name)
        t.state.stop_at_step = 7
        t.fit()
        return load_file(train(QUICKSTART, overrides=over, run_dir=tmp_path / name, resume=True).run_dir
                         / "model.safetensors")

    exact = stop_and_resume("exact")
    assert all(torch.equal(ref[k], exact[k]) for k in ref)
    monkeypatch.setattr(Checkpointer, "objective_generators", lambda self: {})
    fresh = stop_and_resume("generator-restarted")
    assert not all(torch.equal(ref[k], fresh[k]) for k in ref)


@pytest.mark.slow
def test_sigkill_at_random_points_with_evaluation_then_resume_alone(tmp_path):
    """Kills anywhere (inside checkpoint writes, evaluations, the metrics repair, the final save);
    each resume is ``zoo train --resume DIR`` alone. The run ends with the uninterrupted weights,
    each step and each evaluation logged once, results.json complete, and no temporary file."""
    sets = {**SETS, "run.epochs": 1, "run.eval_every": 5, "eval.tasks": ["alignment"]}  # 16 steps
    ref = train(QUICKSTART, overrides=sets, run_dir=tmp_path / "ref", progress=False)
    run, rng = tmp_path / "killed", random.Random(11)
    first = [sys.executable, "-m", "zoo.cli", "train", str(QUICKSTART), "--run-dir", str(run),
             *[f"--set={k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sets.items()]]
    again = [sys.executable, "-m", "zoo.cli", "train", "--resume", str(run)]
    for i, step in enumerate(sorted(rng.sample(range(2, 18), 3))):
        proc = subprocess.Popen(again if i else first, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 300
        while _steps_logged(run) < step and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = subprocess.run(again, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = load_file(ref.run_dir / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "eval" not in r]
    evals = [r["step"] for r in records if "eval" in r]
    assert steps == list(range(1, ref.metrics["steps"] + 1)) and evals == [5, 10, 15, 16]
    assert json.loads((run / "results.json").read_text())["final_loss"] == ref.metrics["final_loss"]
    assert not [p for p in run.rglob(".*") if p.name != ".zoo.lock"]
