"""Training checkpoints: written atomically, resumed exactly.

``run_dir/checkpoints/step-00000100/`` holds ``model.safetensors`` (weights),
``training.pt`` (optimizer state keyed by parameter name — the same under one process, DDP
and FSDP, so a run resumes at another world size or mode —, scheduler, every rank's RNG states
and the objective's own generators — tensors and plain Python only, read
back with ``torch.load(weights_only=True)``), ``state.json`` (step, epoch, position) and,
written last, ``MANIFEST`` — the SHA-256 of each file; a checkpoint without its manifest does not
count, and one whose files do not match it is corrupt. Each is first
written into a hidden temporary directory that is renamed into place, so a crash at any
moment leaves either the previous checkpoint or the new one, never half of one.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import CheckpointError
from zoo.files import atomic_write_text, follow_umask, fsync_dir, sha256_file
from zoo.hub.format import load_weights_strict, read_weights, save_weights, state_for_saving

MANIFEST = "MANIFEST"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _py_state_to_plain(random.getstate()),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _py_state_to_plain(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def model_and_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                              fsdp: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Full weights and the optimizer state keyed by parameter name (``towers.image.…``), not by
    position. Under FSDP this gathers the shards (collective; rank 0 gets them, the others ``{}``)."""
    if fsdp:
        from zoo.training.fsdp import full_model_state, full_optimizer_state
        return full_model_state(model), full_optimizer_state(model, optimizer)
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict
    return state_for_saving(model), get_optimizer_state_dict(model, optimizer)


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a name-keyed optimizer state (or a position-keyed ``optimizer.state_dict()``)."""
    if all(isinstance(k, int) for k in state.get("state", {})) and all(
            isinstance(i, int) for g in state.get("param_groups", []) for i in g.get("params", [])):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict
    set_optimizer_state_dict(model, optimizer, state)


def save_checkpoint(ckpt_root: Path, step: int, model: torch.nn.Module | dict[str, torch.Tensor],
                    training: dict[str, Any], meta: dict[str, Any], keep: int = 2) -> Path:
    """Write ``step-XXXXXXXX`` atomically and prune older checkpoints (keeps ``keep``).
    ``model``: the module, or its full state (as :func:`model_and_optimizer_state` returns).
    A write that fails (disk full, read-only) is a :class:`~zoo.training.rundir.RunDirError` and leaves the
    checkpoints written before untouched."""
    final = ckpt_root / f"step-{step:08d}"
    try:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        for stale in [*ckpt_root.glob(".step-*"), *ckpt_root.glob(".deleting-*")]:  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=f".step-{step:08d}."))
    except OSError as exc:
        raise _storage_error(exc, final) from exc
    try:
        follow_umask(tmp, directory=True)
        save_weights(state_for_saving(model) if isinstance(model, torch.nn.Module) else model,
                     tmp / "model.safetensors")
        with open(tmp / "training.pt", "wb") as f:
            torch.save(training, f)
            f.flush()
            os.fsync(f.fileno())
        atomic_write_text(tmp / "state.json", json.dumps(meta, indent=2))
        write_manifest(tmp)
        if final.exists():
            _remove(final)
        os.replace(tmp, final)
        fsync_dir(ckpt_root)
    except Exception as exc:  # noqa: BLE001 - torch and safetensors report a failed write in their own types
        if not is_write_failure(exc):
            raise
        raise _storage_error(exc, final) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    older = [c for c in complete_checkpoints(ckpt_root) if checkpoint_step(c) <= step]  # never a newer one
    for old in older[:-keep]:
        _remove(old)
    return final


def _storage_error(exc: BaseException, path: Path):
    from zoo.training.rundir import storage_error
    return storage_error(exc, path)


def is_write_failure(exc: BaseException) -> bool:
    from zoo.training.rundir import is_write_failure as check
    return check(exc)


def checkpoint_step(path: Path) -> int:
    return int(path.name.split("-", 1)[1])


def write_manifest(directory: Path) -> None:
    """``MANIFEST``, written last: one ``<sha256>  <file>`` line per file of the checkpoint."""
    names = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != MANIFEST
                   and not p.name.startswith("."))
    atomic_write_text(directory / MANIFEST, "".join(f"{sha256_file(directory / n)}  {n}\n" for n in names))


def read_manifest(directory: Path) -> dict[str, str | None]:
    """``{file: sha256}`` from a MANIFEST (``None`` for the hash of an old, names-only manifest)."""
    out: dict[str, str | None] = {}
    for line in (directory / MANIFEST).read_text("utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 1:
            out[parts[0]] = None
        elif len(parts) == 2:
            out[parts[1]] = parts[0]
    return out


def corrupt_file(directory: Path) -> str | None:
    """The first file of ``directory`` whose SHA-256 differs from its MANIFEST (or that is missing),
    else ``None``."""
    try:
        listed = read_manifest(directory)
    except OSError:
        return MANIFEST
    for name, digest in listed.items():
        path = directory / name
        if not path.is_file() or (digest is not None and sha256_file(path) != digest):
            return name
    return None


def _remove(directory: Path) -> None:
    """Delete a checkpoint so that it stops counting at once: rename it to a hidden name (atomic),
    then delete that. Deleting in place could be killed half-way, leaving a manifest without files."""
    trash = directory.with_name(f".deleting-{directory.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(directory, trash)
    fsync_dir(directory.parent)
    shutil.rmtree(trash, ignore_errors=True)


def complete_checkpoints(ckpt_root: Path) -> list[Path]:
    """Checkpoints whose manifest exists and lists files that exist, oldest first."""
    if not ckpt_root.is_dir():
        return []
    out = []
    for d in sorted(ckpt_root.glob("step-*")):
        if not (d / MANIFEST).is_file() or not d.name[5:].isdigit():
            continue
        try:
            names = read_manifest(d)
        except OSError:
            continue
        if names and all((d / n).is_file() for n in names):
            out.append(d)
    return out


def load_checkpoint(path: Path, model: torch.nn.Module | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load weights into ``model`` (unless ``None``: FSDP reads them itself with
    :func:`checkpoint_weights`); return ``(training_state, meta)``, both checked (:func:`check_state`)."""
    try:
        training = torch.load(path / "training.pt", map_location="cpu", weights_only=True)
        meta = json.loads((path / "state.json").read_text())
    except Exception as exc:  # noqa: BLE001 - any corruption is a CheckpointError
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); "
                              f"delete it to resume from the one before.") from exc
    check_state(path, training, meta)
    if model is not None:
        load_weights_strict(model, path / "model.safetensors")
    return training, meta


# key → (types, must be ≥ 0); missing optional keys take defaults in zoo.training.checkpointing
_META = {"step": (int, True), "epoch": (int, True), "batch_in_epoch": (int, True), "total_steps": (int, True)}
_META_OPTIONAL = {"best": ((int, float), False), "skipped": (int, True), "dataset_len": (int, True),
                  "last_log": (dict, False)}
_TRAINING = {"optimizer": dict, "scheduler": dict}
_TRAINING_OPTIONAL = {"rng": dict, "rng_per_rank": list, "objective_rng": dict}


def check_state(path: Path, training: Any, meta: Any) -> None:
    """``state.json`` / ``training.pt`` hold the keys a resume reads, with the right types:
    else a :class:`CheckpointError` naming the key and the file."""
    for name, obj, required, optional in (("state.json", meta, _META, _META_OPTIONAL),
                                          ("training.pt", training, _TRAINING, _TRAINING_OPTIONAL)):
        where = path / name
        if not isinstance(obj, dict):
            raise CheckpointError(f"{where} holds {type(obj).__name__}, not a table of training state; the "
                                  f"checkpoint is corrupt or not the zoo's: delete {path} to resume from the one before.")
        for key, spec in [*((k, v) for k, v in required.items()), *((k, v) for k, v in optional.items() if k in obj)]:
            types, non_negative = spec if isinstance(spec, tuple) else (spec, False)
            if key not in obj:
                raise CheckpointError(f"{where} has no key {key!r}; the checkpoint is incomplete or from another "
                                      f"program: delete {path} to resume from the one before.")
            value = obj[key]
            if not isinstance(value, types) or isinstance(value, bool) or (non_negative and value < 0):
                want = "a non-negative integer" if non_negative else "/".join(t.__name__ for t in
                                                                             (types if isinstance(types, tuple) else (types,)))
                raise CheckpointError(f"{where}: {key!r} must be {want}, got {value!r}; the checkpoint is corrupt: "
                                      f"delete {path} to resume from the one before.")
    if "rng" not in training and not training.get("rng_per_rank"):
        raise CheckpointError(f"{path / 'training.pt'} has no key 'rng' (random generator states); delete {path} "
                              f"to resume from the one before.")


def checkpoint_weights(path: Path) -> dict[str, torch.Tensor]:
    """The full weights of checkpoint ``path`` (CPU tensors)."""
    return read_weights(path / "model.safetensors")
