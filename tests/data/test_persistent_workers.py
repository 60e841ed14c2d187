"""Loader workers are kept for the whole run (``persistent_workers``) and still see every epoch.

The sampler tags each index with its epoch (``EpochSampler(tagged=True)``), so a worker started in epoch 0
seeds epoch 3's augmentations and re-draws epoch 3's captions itself. The digits recipe here has both
(``captions = "epoch"``, a seeded random crop): a worker stuck in epoch 0 would log other losses.
"""
from __future__ import annotations

import os
import signal

import pytest
import torch

import zoo
from tests.helpers import RECIPES, assert_same_training, logged_losses
from zoo.data.datasets import EpochItems, EpochSampler, Indexed, create_dataset
from zoo.recipes import load_recipe
from zoo.training.trainer import Trainer

# 4 steps an epoch (128 rows, batch 32), 14 steps: epochs 0–3, the last one cut short
EPOCHS = {"data.options.size": 128, "data.options.captions": "epoch", "data.batch_size": 32, "run.steps": 14,
          "run.log_every": 1, "run.progress": False, "optim.warmup_steps": 0, "optim.schedule": "constant",
          "eval.tasks": []}


def run(tmp_path, name: str, workers: int, **more):
    return zoo.train(str(RECIPES / "digits-clip.toml"), run_dir=tmp_path / name,
                     overrides={**EPOCHS, "data.num_workers": workers, **more})


def test_workers_kept_across_epochs_give_the_batches_of_the_main_process(tmp_path):
    run(tmp_path, "main", 0)
    run(tmp_path, "workers", 2)
    assert len(logged_losses(tmp_path / "main")) == 14
    assert_same_training(tmp_path / "main", tmp_path / "workers")
    assert logged_losses(tmp_path / "main") == logged_losses(tmp_path / "workers")  # bit for bit


def test_without_the_epoch_tags_the_workers_would_train_on_other_batches(tmp_path, monkeypatch):
    """The control: the same run with untagged indices logs other losses, so the test above can fail."""
    import zoo.data.loader as loader_module

    class Untagged(EpochSampler):
        def __init__(self, *a, tagged=False, **kw):
            super().__init__(*a, **kw)

    run(tmp_path, "main", 0)
    monkeypatch.setattr(loader_module, "EpochSampler", Untagged)
    run(tmp_path, "untagged", 2)
    main, untagged = logged_losses(tmp_path / "main"), logged_losses(tmp_path / "untagged")
    assert main[:4] == untagged[:4]  # epoch 0 is the same
    assert main[4:] != untagged[4:]  # later epochs are not: other crops and captions


def test_the_trainer_keeps_one_set_of_workers_and_stops_it_when_done(tmp_path):
    overrides = {**EPOCHS, "data.num_workers": 2}
    trainer = Trainer(load_recipe(RECIPES / "digits-clip.toml", overrides), run_dir=tmp_path / "run")
    assert trainer.loader.persistent_workers and trainer.loader.prefetch_factor == 2
    seen = []
    batches = trainer.batches()
    for _ in range(9):  # into epoch 2
        next(batches)
        seen.append(trainer.loader._iterator)
        trainer.state.step += 1
    assert seen[0] is not None and all(it is seen[0] for it in seen)  # the same worker processes all along
    pids = [w.pid for w in seen[0]._workers]
    assert all(w.is_alive() for w in seen[0]._workers)
    batches.close()
    trainer.close()
    assert trainer.loader._iterator is None
    for w in seen[0]._workers:
        w.join(timeout=10)
    assert pids and not any(w.is_alive() for w in seen[0]._workers)


def test_a_resume_may_change_the_number_of_workers_and_stays_exact(tmp_path):
    straight = tmp_path / "straight"
    zoo.train(str(RECIPES / "digits-clip.toml"), run_dir=straight, overrides={**EPOCHS, "data.num_workers": 0})
    half = tmp_path / "half"
    zoo.train(str(RECIPES / "digits-clip.toml"), run_dir=half, overrides={**EPOCHS, "run.steps": 6})
    zoo.train(str(RECIPES / "digits-clip.toml"), run_dir=half, resume=True,
              overrides={**EPOCHS, "data.num_workers": 2, "data.prefetch_factor": 3})
    assert_same_training(straight, half)


def test_tagged_indices_carry_the_epoch_to_the_dataset_and_the_collator():
    ds = create_dataset("digits", size=16, captions="epoch")
    sampler = EpochSampler(len(ds), seed=0, tagged=True, batch=4)
    sampler.set_epoch(5, start_batch_index=1)
    keys = list(sampler)
    assert len(keys) == 12 and all(e == 5 for e, _ in keys)
    indexed = Indexed(ds)
    items = indexed.__getitems__(keys[:4])
    assert isinstance(items, EpochItems) and items.epoch == 5 and ds.epoch == 5
    assert [i for i, _ in items] == [i for _, i in keys[:4]]
    assert indexed[(2, 7)][0] == 7 and ds.epoch == 2
    untagged = EpochSampler(len(ds), seed=0, batch=4)
    untagged.set_epoch(5, start_batch_index=1)
    assert all(isinstance(i, int) for i in untagged)
    assert [i for _, i in keys] == list(untagged)  # the same order, only tagged


def test_a_worker_killed_mid_run_is_a_data_error_naming_it_and_the_resume(tmp_path):
    """The out-of-memory killer's SIGKILL, played by a worker on itself at its third batch: torch surfaces a
    pipe error or a RuntimeError from its SIGCHLD handler; the zoo says what happened and how to go on, and the
    checkpoint before it stays."""
    overrides = {**EPOCHS, "data.num_workers": 2, "run.checkpoint_every": 1}
    trainer = Trainer(load_recipe(RECIPES / "digits-clip.toml", overrides), run_dir=tmp_path / "run")
    trainer.loader.collate_fn = SuicidalCollator(trainer.loader.collate_fn, at_batch=3)
    with pytest.raises(zoo.DataError, match=r"pid \d+ killed by SIGKILL.*data.num_workers.*"
                                            rf"zoo train --resume {tmp_path / 'run'}"):
        trainer.fit()
    assert trainer.loader._iterator is None  # the surviving worker was stopped; nothing hangs
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept and kept[-1] == f"step-{trainer.state.step:08d}"  # every finished step is on disk


class SuicidalCollator:
    """Collates as the real one, and SIGKILLs its own (worker) process at its ``at_batch``-th call."""

    def __init__(self, collate, at_batch: int):
        self.collate, self.at_batch, self.calls = collate, at_batch, 0

    def __call__(self, items):
        self.calls += 1
        if self.calls == self.at_batch and torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.collate(items)


def test_ctrl_c_to_the_process_group_stops_workers_and_trainer_and_resumes_exactly(tmp_path):
    """A terminal's Ctrl-C signals the whole process group: the workers stop quietly, the trainer finishes its
    step and checkpoints; the resumed run (0 workers) ends where the uninterrupted one does."""
    import subprocess
    import sys
    import time

    overrides = {**EPOCHS, "run.steps": 300, "run.log_every": 1}
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={v!r}" if isinstance(v, str) else
                                                       f"{k}={str(v).lower() if isinstance(v, bool) else v}")]
    cmd = [sys.executable, "-m", "zoo.cli", "train", str(RECIPES / "digits-clip.toml"), *sets]
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen([*cmd, "--run-dir", str(stopped), "--set", "data.num_workers=2"], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = stopped / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 20):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "SIGINT" in out and "zoo train --resume" in out and "Traceback" not in out
    assert 20 <= len(logged_losses(stopped)) < 300
    done = subprocess.run([*cmd, "--resume", str(stopped), "--set", "data.num_workers=0"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    straight = tmp_path / "straight"
    assert subprocess.run([*cmd, "--run-dir", str(straight)], capture_output=True, timeout=300).returncode == 0
    assert_same_training(straight, stopped)


@pytest.mark.parametrize("value, message", [(0, "must be > 0"), (1000, "must be ≤ 64, got 1000: each loader worker"),
                                            (True, "must be an integer"), (2.5, "must be an integer")])
def test_a_bad_prefetch_factor_is_a_recipe_error_naming_the_key(value, message):
    with pytest.raises(zoo.RecipeError, match=rf"data\.prefetch_factor'? {message}"):
        load_recipe(RECIPES / "digits-clip.toml", {"data.prefetch_factor": value})


def test_a_batch_pins_every_tensor_when_the_loader_asks(monkeypatch):
    """torch's DataLoader passes objects without ``pin_memory`` through unpinned: Batch has one, and it reaches
    every tensor (views, labels, masks). Pinning needs CUDA; here a clone stands for it (the real thing is
    tests/test_cuda.py::test_loader_batches_arrive_pinned_with_workers)."""
    from torch.utils.data._utils.pin_memory import pin_memory as torch_pin

    from zoo.data.collate import Batch

    pinned = []

    def fake_pin(self, *a, **k):
        out = self.clone()
        pinned.append(out)
        return out

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    batch = Batch({"x": ("x", torch.ones(4, 3)), "t": ("t", {"input_ids": torch.ones(4, 5, dtype=torch.long)})},
                  {"class": torch.arange(4)}, {"x": torch.ones(4, dtype=torch.bool)}, 4)
    out = torch_pin(batch)
    assert isinstance(out, Batch) and out.size == 4 and len(pinned) == 4
    tensors = [out.views["x"][1], out.views["t"][1]["input_ids"], out.labels["class"], out.mask["x"]]
    assert all(any(t is p for p in pinned) for t in tensors)
