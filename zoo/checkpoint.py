"""Training checkpoints: written atomically, resumed exactly.

``run_dir/checkpoints/step-00000100/`` holds ``model.safetensors`` (weights),
``training.pt`` (optimizer state keyed by parameter name — the same under one process, DDP
and FSDP, so a run resumes at another world size or mode —, scheduler, every rank's RNG states
and the objective's own generators — tensors and plain Python only, read
back with ``torch.load(weights_only=True)``), ``state.json`` (step, epoch, position) and,
written last, ``MANIFEST`` — a checkpoint without its manifest does not count. Each is first
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

from .errors import CheckpointError
from .hub import load_weights_strict, read_weights, save_weights, state_for_saving
from .utils import atomic_write_text, fsync_dir

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
        from .fsdp import full_model_state, full_optimizer_state
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
    ``model``: the module, or its full state (as :func:`model_and_optimizer_state` returns)."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    for stale in [*ckpt_root.glob(".step-*"), *ckpt_root.glob(".deleting-*")]:  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    final = ckpt_root / f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=f".step-{step:08d}."))
    try:
        save_weights(state_for_saving(model) if isinstance(model, torch.nn.Module) else model,
                     tmp / "model.safetensors")
        with open(tmp / "training.pt", "wb") as f:
            torch.save(training, f)
            f.flush()
            os.fsync(f.fileno())
        atomic_write_text(tmp / "state.json", json.dumps(meta, indent=2))
        atomic_write_text(tmp / MANIFEST, "\n".join(sorted(p.name for p in tmp.iterdir())) + "\n")
        if final.exists():
            _remove(final)
        os.replace(tmp, final)
        fsync_dir(ckpt_root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in complete_checkpoints(ckpt_root)[:-keep]:
        _remove(old)
    return final


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
        m = d / MANIFEST
        if m.is_file() and all((d / n).is_file() for n in m.read_text().split()):
            out.append(d)
    return out


def load_checkpoint(path: Path, model: torch.nn.Module | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load weights into ``model`` (unless ``None``: FSDP reads them itself with
    :func:`checkpoint_weights`); return ``(training_state, meta)``."""
    if model is not None:
        load_weights_strict(model, path / "model.safetensors")
    try:
        training = torch.load(path / "training.pt", map_location="cpu", weights_only=True)
        meta = json.loads((path / "state.json").read_text())
    except Exception as exc:  # noqa: BLE001 - any corruption is a CheckpointError
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); "
                              f"delete it to resume from the one before.") from exc
    return training, meta


def checkpoint_weights(path: Path) -> dict[str, torch.Tensor]:
    """The full weights of checkpoint ``path`` (CPU tensors)."""
    return read_weights(path / "model.safetensors")
