"""SIGTERM / SIGINT stop a run with a checkpoint and then reach the caller: a script that trains several
runs in a loop stops at the interrupted one instead of going on to the next."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zoo.recipes import load_recipe
from zoo.training.checkpoints import complete_checkpoints
from zoo.training.trainer import Trainer, TrainingInterrupted, train

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"
# 8 steps an epoch; dropout, so that resuming exactly needs the checkpoint's RNG state
OVER = {"run.epochs": 40, "run.log_every": 1, "run.progress": False, "data.options.size": 256,
        "data.batch_size": 32, "optim.warmup_steps": 8, "run.checkpoint_every": 0,
        "model.towers.x.dropout": 0.1, "model.towers.y.dropout": 0.1}

LOOP = """
import json, sys
import zoo
recipe, over = sys.argv[1], json.loads(sys.argv[2])
for run_dir in sys.argv[3:]:
    print("starting", run_dir, flush=True)
    zoo.train(recipe, overrides=over, run_dir=run_dir)
    print("finished", run_dir, flush=True)
"""


def _lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def test_sigterm_stops_a_script_that_trains_runs_in_a_loop(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-c", LOOP, str(QUICKSTART), json.dumps(OVER), str(first), str(second)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while _lines(first / "metrics.jsonl") < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode != 0, out + err[-2000:]                    # the script ended, not just the run
    assert f"starting {second}" not in out and not second.exists()   # the second run never started
    assert f"finished {first}" not in out
    assert "TrainingInterrupted" in err and "SIGTERM" in err and f"zoo train --resume {first}" in err
    (checkpoint,) = complete_checkpoints(first / "checkpoints")
    stopped = int(checkpoint.name.split("-")[1])
    assert 3 <= stopped < 320 and not (first / "results.json").exists()
    # the checkpoint resumes to the weights of a run that was never interrupted
    resumed = train(None, resume=True, run_dir=first)
    reference = train(QUICKSTART, overrides=OVER, run_dir=tmp_path / "reference")
    assert resumed.metrics["steps"] == reference.metrics["steps"] == 320
    a, b = load_file(first / "model.safetensors"), load_file(reference.run_dir / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _SignalAt(Trainer):
    """Sends its own process a signal once ``state.step`` reaches ``at``."""

    def __init__(self, *a, at: int, sig: signal.Signals, **kw):
        super().__init__(*a, **kw)
        self.at, self.sig = at, sig

    def _after_step(self, loss: float, batch_size: int) -> None:
        super()._after_step(loss, batch_size)
        if self.state.step == self.at:
            signal.raise_signal(self.sig)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_interruption_is_raised_after_the_checkpoint_and_the_handlers_are_restored(tmp_path, sig):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    over = {**OVER, "run.epochs": 1}
    t = _SignalAt(load_recipe(QUICKSTART, over), run_dir=tmp_path, at=3, sig=sig)
    with pytest.raises(TrainingInterrupted, match=rf"interrupted by {sig.name}: stopped at step 3 .*"
                                                  rf"zoo train --resume {tmp_path}") as info:
        t.fit()
    assert info.value.signal == sig.name and info.value.result.metrics["stopped_at"] == 3
    assert [c.name for c in complete_checkpoints(tmp_path / "checkpoints")] == ["step-00000003"]
    assert {s: signal.getsignal(s) for s in before} == before
    assert train(None, resume=True, run_dir=tmp_path).metrics["steps"] == 8


def test_a_signal_during_the_last_step_lets_the_run_finish_and_still_reaches_the_caller(tmp_path):
    over = {**OVER, "run.epochs": 1}
    t = _SignalAt(load_recipe(QUICKSTART, over), run_dir=tmp_path, at=8, sig=signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="the run had just finished") as info:
        t.fit()
    assert info.value.result.metrics["steps"] == 8 and (tmp_path / "results.json").is_file()


def test_a_stop_asked_for_in_code_returns_without_raising(tmp_path):
    t = Trainer(load_recipe(QUICKSTART, {**OVER, "run.epochs": 1}), run_dir=tmp_path)
    t.state.stop_at_step = 2
    assert t.fit().metrics["stopped_at"] == 2
