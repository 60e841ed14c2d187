"""A run directory belongs to one run: claimed, locked, checked on resume, and its failures named.

    claim = claim_run_dir(run_dir, recipe, resume=False, overwrite=False)   # raises RunDirError / RecipeError
    ...                                                                      # train
    claim.release()

- a directory that already holds a run is refused unless ``resume`` (continue it) or ``overwrite``
  (remove the old run's files first);
- a ``filelock`` lock (``.zoo.lock``, the holder's pid in ``.zoo.lock.pid``) is held for the life of the
  run: a second writer gets a :class:`RunDirError` naming that pid;
- the resolved recipe (every ``--set`` applied) is written to ``recipe.toml`` at step 0; a resume whose
  recipe differs from it in any key outside :data:`RESUMABLE_KEYS` is refused, listing old → new.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.errors import RecipeError, ZooError
from zoo.files import atomic_write_text

log = logging.getLogger("zoo.train")

RECIPE, RESULTS, METRICS = "recipe.toml", "results.json", "metrics.jsonl"
LOCK, PID = ".zoo.lock", ".zoo.lock.pid"
# everything a run writes at its top level: what --overwrite removes (and nothing else)
RUN_FILES = ("checkpoints", "best", "plots", "assets", METRICS, RESULTS, RECIPE, "config.json", "model.safetensors",
             "README.md", "MANIFEST")
# keys a resume may change: they decide how long, how visibly and with how many loader processes the run goes on,
# not what a step computes (a batch is the same with any number of workers: tests/data/test_persistent_workers.py)
RESUMABLE_KEYS = ("run.steps", "run.epochs", "run.eval_every", "run.checkpoint_every", "run.keep_checkpoints",
                  "run.log_every", "run.progress", "run.name", "run.output_dir", "description", "data.num_workers",
                  "data.prefetch_factor")


class RunDirError(ZooError):
    """A run directory that cannot be used: it holds another run, another process writes it,
    it does not exist (``--resume``), or it cannot be written (disk full, read-only)."""


def stored_recipe(run_dir: str | Path | None) -> Path:
    """``zoo train --resume RUN_DIR`` without a recipe: the run's own ``recipe.toml`` (every ``--set`` included)."""
    if not run_dir:
        raise RecipeError("no recipe given: pass a recipe file, or resume=True with run_dir to continue the run "
                          "stored there (zoo train --resume RUN_DIR).")
    path = Path(run_dir) / RECIPE
    if not path.is_file():
        raise RunDirError(f"nothing to resume: {run_dir} holds no {RECIPE} ("
                          f"{'not a run directory' if Path(run_dir).is_dir() else 'it does not exist'}). Check the "
                          f"path, or pass the recipe: zoo train RECIPE --resume {run_dir}.")
    return path


@contextlib.contextmanager
def stop_on_signals(on_signal: Callable[[str], None]):
    """Inside: SIGINT / SIGTERM call ``on_signal(name)`` ("SIGINT", "SIGTERM") instead of ending the
    process; the trainer finishes its step, writes a checkpoint and then raises
    :class:`~zoo.training.trainer.TrainingInterrupted`, so that the signal still reaches its caller.
    The previous handlers are restored on the way out. Outside the main thread: nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        on_signal(signal.Signals(signum).name)
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def holds_run(run_dir: Path, *, or_recipe: bool = False) -> bool:
    """Whether ``run_dir`` holds a run's work (a logged step, a checkpoint, a model). A ``recipe.toml``
    alone is a run that never made a step (e.g. its recipe failed to build): it counts with ``or_recipe``."""
    names = ("checkpoints", METRICS, RESULTS, "model.safetensors") + ((RECIPE,) if or_recipe else ())
    return any((run_dir / n).exists() for n in names)


class RunClaim:
    """The lock on one run directory (``release`` when the run ends; only rank 0 holds one)."""

    def __init__(self, run_dir: Path):
        from filelock import FileLock, Timeout
        self.run_dir = run_dir
        self._lock = FileLock(str(run_dir / LOCK), timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            try:
                holder = (run_dir / PID).read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise RunDirError(f"{run_dir} is being written by another zoo process (pid {holder}); two runs must "
                              f"not write one directory. Wait for it to finish, stop it (kill {holder}), or "
                              f"train into another --run-dir.") from None
        except OSError as exc:
            raise storage_error(exc, run_dir / LOCK) from exc
        try:
            atomic_write_text(run_dir / PID, f"{os.getpid()}\n")
        except OSError as exc:
            self._lock.release()
            raise storage_error(exc, run_dir / PID) from exc

    def release(self) -> None:
        if self._lock.is_locked:
            (self.run_dir / PID).unlink(missing_ok=True)
            self._lock.release()


def claim_run_dir(run_dir: Path, recipe, *, resume: bool, overwrite: bool) -> RunClaim:
    """Check that ``run_dir`` may be written by this run, lock it, and store the recipe (rank 0)."""
    if resume and overwrite:
        raise RunDirError("resume and overwrite contradict each other: --resume continues the run in the "
                          "directory, --overwrite deletes it and starts again. Pass one.")
    if resume and not run_dir.is_dir():
        raise RunDirError(f"nothing to resume: {run_dir} does not exist. Check the path, or train without "
                          f"--resume to start a new run there.")
    if resume and not holds_run(run_dir, or_recipe=True):
        raise RunDirError(f"nothing to resume: {run_dir} holds no run (no checkpoints, no {RECIPE}). Check the "
                          f"path, or train without --resume.")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, run_dir) from exc
    claim = RunClaim(run_dir)
    try:
        if not resume and holds_run(run_dir):
            if not overwrite:
                raise RunDirError(f"{run_dir} already holds a run. Continue it with `zoo train --resume {run_dir}` "
                                  f"(resume=True), or start again with --overwrite (overwrite=True), which deletes "
                                  f"the old run's files first; or choose another --run-dir / run.name.")
            remove_run_files(run_dir)
        clear_temporaries(run_dir)
        if resume and (run_dir / RECIPE).is_file():
            check_resume_recipe(run_dir / RECIPE, recipe)
        write_text(run_dir / RECIPE, recipe.to_toml())
    except BaseException:
        claim.release()
        raise
    return claim


def remove_run_files(run_dir: Path) -> None:
    log.warning("--overwrite: removing the previous run's files in %s", run_dir)
    for name in RUN_FILES:
        p = run_dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def clear_temporaries(run_dir: Path) -> None:
    """Temporary files a killed run left behind (``.name.xxxx.tmp``, half-written checkpoints)."""
    for p in [*run_dir.glob(".*.tmp"), *run_dir.glob("best/.*.tmp"), *run_dir.glob("checkpoints/.step-*"),
              *run_dir.glob("checkpoints/.deleting-*")]:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(_flat(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def recipe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, old, new)`` for every dotted key whose value differs (missing = ``None``)."""
    a, b = _flat(old), _flat(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def check_resume_recipe(stored_path: Path, recipe) -> None:
    """Refuse a resume whose recipe differs from the run's stored one outside :data:`RESUMABLE_KEYS`."""
    from zoo.recipes import load_recipe
    stored = load_recipe(stored_path)
    changed = [c for c in recipe_changes(stored.to_dict(), recipe.to_dict()) if c[0] not in RESUMABLE_KEYS]
    if changed:
        lines = "\n".join(f"  {k}: {old!r} → {new!r}" for k, old, new in changed)
        raise RecipeError(f"the resume's recipe differs from the one the run in {stored_path.parent} was trained "
                          f"with ({stored_path}):\n{lines}\nA resume continues that run exactly; only "
                          f"{', '.join(RESUMABLE_KEYS)} may change. Resume with `zoo train --resume "
                          f"{stored_path.parent}` (no recipe: the stored one is used), or start a new run "
                          f"(another --run-dir, or --overwrite).")


def write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_text` whose I/O failures are :class:`RunDirError` (disk full, read-only)."""
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise storage_error(exc, path) from exc


def finite_json(value: Any) -> Any:
    """``value`` with NaN / ±inf replaced by ``None``: JSON has no NaN (a bare ``NaN`` is invalid JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def write_results(run_dir: Path, metrics: dict[str, Any]) -> None:
    write_text(run_dir / RESULTS, json.dumps(finite_json(metrics), indent=2, default=str, allow_nan=False))


def read_results(run_dir: Path) -> dict[str, Any] | None:
    """``results.json`` of a finished run, or ``None`` when it is missing or unreadable."""
    try:
        out = json.loads((run_dir / RESULTS).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) else None


_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def is_write_failure(exc: BaseException) -> bool:
    """An OSError, or torch's / safetensors' report of a failed write (``inline_container.cc``, ``os error 28``)."""
    if isinstance(exc, OSError):
        return True
    text = str(exc)
    return not isinstance(exc, ZooError) and any(s in text for s in (
        "inline_container", "PytorchStreamWriter", "write failed", "No space", "os error", "StorageFull",
        "Read-only file system", "Permission denied"))


@contextlib.contextmanager
def writing(path: Path):
    """Inside: a failed write (OSError, torch's or safetensors' write errors) becomes a :class:`RunDirError`
    that says the disk is full or the directory is not writable, naming ``path``; other errors pass."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - only failed writes are translated
        if not is_write_failure(exc):
            raise
        raise storage_error(exc, path) from exc


def storage_error(exc: BaseException, path: Path) -> ZooError:
    """An I/O failure while writing ``path``, as a :class:`RunDirError` that says what happened:
    the disk is full, the directory is not writable, or another OS error (``exc`` is not an I/O one:
    returned as is when it is already a ZooError)."""
    if isinstance(exc, ZooError):
        return exc
    text = str(exc)
    code = getattr(exc, "errno", None)
    where = Path(path)
    probe = next((p for p in (where, *where.parents) if p.exists()), Path("."))
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        free = -1
    if code in _FULL or "No space left" in text or "os error 28" in text or (
            isinstance(exc, RuntimeError) and 0 <= free < 64 * 2**20):
        return RunDirError(f"cannot write {path}: the disk is full ({max(free, 0) / 2**20:.0f} MiB free on the "
                           f"filesystem of {probe}). The last complete checkpoint is kept; free space (or move the "
                           f"run with --run-dir) and resume with `zoo train --resume <run dir>`.")
    if code in _READ_ONLY or "Read-only file system" in text or "Permission denied" in text:
        return RunDirError(f"cannot write {path}: the directory is not writable ({exc}). Choose a writable "
                           f"output (run.output_dir, --run-dir) or fix its permissions.")
    return RunDirError(f"cannot write {path}: {type(exc).__name__}: {exc}. Check the disk and the path; the last "
                       f"complete checkpoint is kept, resume with `zoo train --resume <run dir>`.")
