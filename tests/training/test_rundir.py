"""A run directory belongs to one run; resumes are checked; corruption is caught; I/O failures are named.
(See docs/reliability.md: each guarantee there names its test here or in test_reliability.py.)"""
from __future__ import annotations

import errno
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo.cli import main
from zoo.errors import CheckpointError, RecipeError
from zoo.recipes import load_recipe
from zoo.training.checkpoints import complete_checkpoints, corrupt_file, write_manifest
from zoo.training.rundir import RunDirError
from zoo.training.step import ForwardBackward
from zoo.training.trainer import Trainer, train

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"
# 16 steps of 32 rows, a checkpoint every 2 steps, dropout (so that the RNG matters)
OVER = {"run.steps": 16, "run.log_every": 1, "run.progress": False, "data.options.size": 256,
        "data.batch_size": 32, "run.checkpoint_every": 2, "run.keep_checkpoints": 2,
        "model.towers.x.dropout": 0.1, "optim.warmup_steps": 2}


def _stopped(run_dir: Path, at: int, over=OVER) -> Trainer:
    t = Trainer(load_recipe(QUICKSTART, over), run_dir=run_dir)
    t.state.stop_at_step = at
    t.fit()
    return t


def _same(a: Path, b: Path) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _flip(path: Path, at: float = 0.6) -> None:
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    data[i:i + 4] = bytes(b ^ 0xFF for b in data[i:i + 4])
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run every resumed run must reproduce bit for bit."""
    return train(QUICKSTART, overrides=OVER, run_dir=tmp_path_factory.mktemp("ref") / "run").run_dir


# -- 1. a run directory belongs to one run ----------------------------------------------------
def test_training_over_a_run_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    train(QUICKSTART, overrides=OVER, run_dir=run)
    with pytest.raises(RunDirError, match="already holds a run") as err:
        train(QUICKSTART, overrides={**OVER, "run.steps": 4}, run_dir=run)
    assert str(run) in str(err.value) and "--resume" in str(err.value) and "--overwrite" in str(err.value)
    assert json.loads((run / "results.json").read_text())["steps"] == 16       # the old run untouched
    assert [d.name for d in complete_checkpoints(run / "checkpoints")] == ["step-00000014", "step-00000016"]
    assert main(["train", str(QUICKSTART), "--run-dir", str(run)]) == 2  # the CLI too, before any work
    assert json.loads((run / "results.json").read_text())["steps"] == 16


def test_overwrite_removes_the_old_run_and_the_stop_message_names_a_checkpoint(tmp_path, caplog):
    run = tmp_path / "run"
    train(QUICKSTART, overrides=OVER, run_dir=run)
    (run / "notes.txt").write_text("mine")
    caplog.set_level(logging.WARNING, "zoo.train")
    t = Trainer(load_recipe(QUICKSTART, {**OVER, "run.steps": 6, "run.checkpoint_every": 1}), run_dir=run,
                overwrite=True)
    assert not (run / "model.safetensors").exists() and not (run / "results.json").exists()
    t.state.stop_at_step = 3
    result = t.fit()
    assert Path(result.metrics["checkpoint"]).is_dir() and result.metrics["checkpoint"] in caplog.text
    assert [d.name for d in complete_checkpoints(run / "checkpoints")] == ["step-00000002", "step-00000003"]
    assert f"zoo train --resume {run}" in caplog.text and (run / "notes.txt").read_text() == "mine"


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    run = tmp_path / "run"
    first = Trainer(load_recipe(QUICKSTART, OVER), run_dir=run)
    with pytest.raises(RunDirError, match=f"pid {os.getpid()}"):
        Trainer(load_recipe(QUICKSTART, OVER), run_dir=run, overwrite=True)
    other = subprocess.run([sys.executable, "-m", "zoo.cli", "train", "--resume", str(run)], capture_output=True,
                           text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert other.returncode == 2 and f"pid {os.getpid()}" in other.stderr, other.stderr[-2000:]
    first.close()
    Trainer(load_recipe(QUICKSTART, OVER), run_dir=run, overwrite=True).close()  # free again


def test_a_recipe_that_fails_to_build_leaves_the_directory_free(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RecipeError) as failed:   # the traceback (and the half-built trainer) stay alive
        Trainer(load_recipe(QUICKSTART, {**OVER, "objective.options.bogus": 1}), run_dir=run)
    Trainer(load_recipe(QUICKSTART, OVER), run_dir=run).close()
    assert failed.value is not None


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        run = train(QUICKSTART, overrides=OVER, run_dir=tmp_path / "run").run_dir
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    for name in ("model.safetensors", "config.json", "README.md", "recipe.toml", "results.json", "metrics.jsonl"):
        assert mode(run / name) == 0o644, name
    for ckpt in complete_checkpoints(run / "checkpoints"):
        assert mode(ckpt) == 0o755 and {mode(f) for f in ckpt.iterdir()} == {0o644}


def test_names_that_would_leave_the_run_directory_are_refused(tmp_path, tiny_model):
    for name in ("../elsewhere", "a/b", "/abs"):
        with pytest.raises(RecipeError, match="plain name"):
            load_recipe(QUICKSTART, {**OVER, "run.name": name})
    with pytest.raises(RecipeError, match="plain name"):
        load_recipe(QUICKSTART, {"model.towers": {"/abs/path": {"encoder": "mlp", "modality": "vector"}}})
    tiny_model.save_pretrained(tmp_path / "ck")
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["model"]["towers"]["/abs/path"] = cfg["model"]["towers"].pop("x")
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="plain name"):
        zoo.load(f"local-dir:{tmp_path / 'ck'}")


# -- 2. resume is checked, never silently different ------------------------------------------
def test_resume_alone_continues_the_stored_recipe_exactly(tmp_path, reference, capsys):
    run = tmp_path / "run"
    t = Trainer(load_recipe(QUICKSTART, OVER), run_dir=run)
    assert load_recipe(run / "recipe.toml").to_dict() == load_recipe(QUICKSTART, OVER).to_dict()  # at step 0
    t.state.stop_at_step = 5
    t.fit()
    assert main(["train", "--resume", str(run)]) == 0  # no recipe, no --set: the stored one
    assert json.loads((run / "results.json").read_text())["steps"] == 16
    assert _same(reference, run) and _losses_equal(run, reference)


def _losses_equal(a: Path, b: Path) -> bool:
    strip = lambda rs: [(r["step"], r.get("loss")) for r in rs]  # noqa: E731 - speeds differ, losses must not
    return strip(_records(a)) == strip(_records(b))


@pytest.mark.parametrize("change", [{"optim.lr": 0.3}, {"data.batch_size": 16}, {"run.seed": 1},
                                    {"data.options.size": 512}])
def test_a_resume_with_another_recipe_is_refused_listing_the_changes(tmp_path, change):
    run = tmp_path / "run"
    _stopped(run, 5)
    with pytest.raises(RecipeError, match="differs") as err:
        train(QUICKSTART, overrides={**OVER, **change}, run_dir=run, resume=True)
    (key, new), = change.items()
    old = load_recipe(QUICKSTART, OVER)
    section, _, rest = key.partition(".")
    old_value = getattr(getattr(old, section), rest) if "." not in rest else old.data.options["size"]
    assert f"{key}: {old_value!r} → {new!r}" in str(err.value)


def test_allowed_changes_resume_and_the_dataset_length_is_checked(tmp_path, caplog):
    run = tmp_path / "run"
    _stopped(run, 4)
    result = train(QUICKSTART, overrides={**OVER, "run.steps": 20, "run.log_every": 2, "run.checkpoint_every": 4},
                   run_dir=run, resume=True)
    assert result.metrics["steps"] == 20
    run2 = tmp_path / "run2"
    _stopped(run2, 4)
    latest = complete_checkpoints(run2 / "checkpoints")[-1]
    state = json.loads((latest / "state.json").read_text())
    (latest / "state.json").write_text(json.dumps({**state, "dataset_len": 999}))
    write_manifest(latest)
    with pytest.raises(RecipeError, match="999"):
        train(None, run_dir=run2, resume=True)


def test_resume_of_a_path_that_does_not_exist_is_an_error(tmp_path, capsys):
    with pytest.raises(RunDirError, match="does not exist"):
        train(QUICKSTART, overrides=OVER, run_dir=tmp_path / "nowhere", resume=True)
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    assert "nothing to resume" in capsys.readouterr().err and not (tmp_path / "nowhere").exists()


def test_resuming_a_finished_run_changes_nothing(tmp_path, caplog):
    over = {**OVER, "eval.tasks": ["alignment"]}
    run = train(QUICKSTART, overrides=over, run_dir=tmp_path / "run").run_dir
    before = {n: (run / n).read_bytes() for n in ("results.json", "metrics.jsonl", "model.safetensors")}
    caplog.set_level(logging.INFO, "zoo.train")
    result = train(QUICKSTART, overrides=over, run_dir=run, resume=True)
    assert "already finished" in caplog.text
    assert result.metrics == json.loads(before["results.json"]) and result.metrics["final_loss"] is not None
    assert {n: (run / n).read_bytes() for n in before} == before


def test_a_kill_after_the_final_checkpoint_resumes_to_complete_results(tmp_path, monkeypatch, reference):
    """Killed between the last checkpoint and results.json: the resume writes results.json with the
    final loss (kept in the checkpoint), logs the evaluation once, and leaves no temporary file."""
    over = {**OVER, "eval.tasks": ["alignment"]}
    run = tmp_path / "run"

    def killed(*a, **k):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr("zoo.training.trainer.write_results", killed)
        with pytest.raises(KeyboardInterrupt):
            train(QUICKSTART, overrides=over, run_dir=run)
    result = train(None, run_dir=run, resume=True)
    ref = json.loads((reference / "results.json").read_text())
    assert result.metrics["final_loss"] == ref["final_loss"] is not None
    evals = [r for r in _records(run) if "eval" in r]
    assert len(evals) == 1 and [r["step"] for r in _records(run) if "eval" not in r] == list(range(1, 17))
    assert not [p for p in run.rglob(".*") if p.name not in (".zoo.lock",)]


def test_results_json_is_valid_json_when_every_batch_was_skipped(tmp_path, monkeypatch):
    real = ForwardBackward.loss
    monkeypatch.setattr(ForwardBackward, "loss", lambda self, encoded, batch: real(self, encoded, batch) * float("nan"))
    run = train(QUICKSTART, overrides={**OVER, "run.steps": 3, "run.on_nonfinite": "skip"},
                run_dir=tmp_path / "run").run_dir

    def no_nan(constant):
        raise AssertionError(f"{constant} is not JSON")
    results = json.loads((run / "results.json").read_text(), parse_constant=no_nan)
    assert results["skipped_batches"] == 3 and results["final_loss"] is None


# -- 3. corruption is caught ------------------------------------------------------------------
@pytest.mark.parametrize("victim", ["model.safetensors", "training.pt"])
def test_a_corrupt_latest_checkpoint_falls_back_and_ends_exact(tmp_path, reference, caplog, victim):
    run = tmp_path / "run"
    _stopped(run, 7)   # checkpoints 6 and 7
    _flip(run / "checkpoints" / "step-00000007" / victim)
    caplog.set_level(logging.WARNING, "zoo.train")
    train(None, run_dir=run, resume=True)
    assert "step 7" in caplog.text and victim in caplog.text
    assert _same(reference, run) and _losses_equal(run, reference)
    assert (run / "checkpoints" / "corrupt-step-00000007").is_dir()


def test_a_corrupt_model_of_a_finished_run_is_a_checkpoint_error(tmp_path, reference):
    zoo.load(f"local-dir:{reference}")
    import shutil
    shutil.copytree(reference, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints"))
    _flip(tmp_path / "run" / "model.safetensors", at=0.9)  # in the tensor data: the header still parses
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt"):
        zoo.load(f"local-dir:{tmp_path / 'run'}")


def test_a_partial_metrics_line_is_repaired_and_the_repair_is_atomic(tmp_path, monkeypatch, reference):
    run = tmp_path / "run"
    _stopped(run, 6)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "lo')                     # a kill in the middle of a line
    before = (run / "metrics.jsonl").read_bytes()
    with monkeypatch.context() as m:                 # killed inside the repair: the old file is intact
        m.setattr("zoo.files.os.replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            train(None, run_dir=run, resume=True)
    assert (run / "metrics.jsonl").read_bytes() == before
    train(None, run_dir=run, resume=True)
    assert _losses_equal(run, reference)


@pytest.mark.parametrize("file,edit,key", [
    ("state.json", lambda s: {k: v for k, v in s.items() if k != "step"}, "step"),
    ("state.json", lambda s: {**s, "step": -3}, "step"),
    ("state.json", lambda s: {**s, "epoch": "one"}, "epoch"),
    ("training.pt", lambda s: {k: v for k, v in s.items() if k != "scheduler"}, "scheduler"),
    ("training.pt", lambda s: {**s, "optimizer": [1, 2]}, "optimizer"),
])
def test_a_malformed_checkpoint_is_a_checkpoint_error_before_resuming(tmp_path, caplog, file, edit, key):
    run = tmp_path / "run"
    _stopped(run, 4)
    latest = complete_checkpoints(run / "checkpoints")[-1]
    if file == "state.json":
        (latest / file).write_text(json.dumps(edit(json.loads((latest / file).read_text()))))
    else:
        torch.save(edit(torch.load(latest / file, weights_only=True)), latest / file)
    write_manifest(latest)  # a consistent manifest: not corruption, a malformed checkpoint
    caplog.set_level(logging.INFO, "zoo.train")
    with pytest.raises(CheckpointError) as err:
        train(None, run_dir=run, resume=True)
    assert repr(key) in str(err.value) and file in str(err.value) and "resumed" not in caplog.text


def test_a_checkpoint_of_another_architecture_is_a_checkpoint_error(tmp_path, caplog):
    run = tmp_path / "run"
    _stopped(run, 4)
    (run / "recipe.toml").unlink()  # no stored recipe to compare with: the weights must be checked
    caplog.set_level(logging.INFO, "zoo.train")
    with pytest.raises(CheckpointError, match="model.safetensors does not fit"):
        train(QUICKSTART, overrides={**OVER, "model.towers.x.hidden": 32}, run_dir=run, resume=True)
    assert "resumed" not in caplog.text


# -- 5. I/O failures are named, before work is lost ---------------------------------------------
def test_a_full_disk_is_named_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    run, calls = tmp_path / "run", []
    real_save = torch.save

    def save(obj, f, *a, **k):  # the 3rd checkpoint's write fails as torch reports a full disk
        calls.append(1)
        if len(calls) == 3:
            f.write(b"PK\x03\x04partial")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr("zoo.training.checkpoints.torch.save", save)
    monkeypatch.setattr("zoo.training.rundir.shutil.disk_usage", lambda p: type("U", (), {"free": 0})())
    with pytest.raises(RunDirError, match="disk is full") as err:
        train(QUICKSTART, overrides=OVER, run_dir=run)
    assert "step-00000006" in str(err.value)
    kept = complete_checkpoints(run / "checkpoints")
    assert [d.name for d in kept] == ["step-00000002", "step-00000004"] and all(corrupt_file(d) is None for d in kept)
    assert not list((run / "checkpoints").glob(".*"))


def test_enospc_from_the_weights_writer_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr("zoo.hub.format.save_file", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(RunDirError, match="disk is full"):
        train(QUICKSTART, overrides=OVER, run_dir=tmp_path / "run")


def test_a_read_only_output_directory_is_named(tmp_path):
    if os.geteuid() == 0:   # root writes through permissions: use a read-only filesystem (sysfs)
        target = Path("/sys/zoo-read-only-test/run")
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        target = tmp_path / "ro" / "run"
    with pytest.raises(RunDirError, match="not writable") as err:
        train(QUICKSTART, overrides=OVER, run_dir=target)
    assert str(target) in str(err.value)
