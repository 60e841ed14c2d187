"""Checks a saved model passes before it is trusted or anything is allocated for it.

- ``MANIFEST`` next to ``config.json``: the SHA-256 of ``model.safetensors``, ``config.json`` and every
  file under ``assets/`` (the files that decide the model; README.md and recipe.toml may be edited);
  :func:`verify_manifest` refuses a checkpoint whose files do not match.
- :func:`check_config`: the values of ``config.json`` (format version, sizes, temperature, tower keys).
- :func:`check_fits`: the model the config describes, built on the ``meta`` device (no memory), must fit
  in this machine's memory, and the weights file's names, shapes and dtypes must match it.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from zoo.errors import CheckpointError
from zoo.files import atomic_write_text, sha256_file

MANIFEST = "MANIFEST"
SAFE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def check_key(key: Any, what: str = "tower key") -> str:
    """A name used as a path component (tower keys → ``assets/<key>``, run names): one plain
    component, so that every file stays inside its directory."""
    if not isinstance(key, str) or not SAFE_KEY.match(key) or key in (".", "..") or ".." in key:
        raise CheckpointError(f"{what} {key!r} is not a plain name (letters, digits, '_', '-', '.'; no '/', "
                              f"no '..'): it would write or read files outside the checkpoint. Rename it.")
    return key


def write_manifest(directory: Path, names: list[str]) -> None:
    """Write ``MANIFEST``: ``<sha256>  <relative path>`` for each existing file of ``names`` and of ``assets/``."""
    files = [n for n in names if (directory / n).is_file()]
    assets = directory / "assets"
    if assets.is_dir():
        files += sorted(str(p.relative_to(directory)) for p in assets.rglob("*") if p.is_file())
    atomic_write_text(directory / MANIFEST, "".join(f"{sha256_file(directory / n)}  {n}\n" for n in files))


def verify_manifest(directory: Path) -> None:
    """Every file ``MANIFEST`` lists exists and has its SHA-256 (no MANIFEST: nothing to verify)."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return
    for line in manifest.read_text("utf-8", errors="replace").splitlines():
        parts = line.split(None, 1)
        if len(parts) != 2:
            continue
        digest, name = parts
        path = directory / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise CheckpointError(f"{manifest} lists {name!r}, a path outside the checkpoint; the manifest is "
                                  f"corrupt or crafted. Re-save or re-download the checkpoint.")
        if not path.is_file():
            raise CheckpointError(f"{path} is missing, but {manifest} lists it; the checkpoint is incomplete. "
                                  f"Re-save or re-download it.")
        if sha256_file(path) != digest:
            raise CheckpointError(f"{path} is corrupt: its SHA-256 differs from the one in {manifest}. Re-save or "
                                  f"re-download the checkpoint (or resume training from its last checkpoint). If you "
                                  f"changed the file on purpose, delete {manifest}.")


def read_json(path: Path) -> Any:
    """``json.loads`` whose every failure (syntax, encoding, nesting too deep, huge numbers) is a CheckpointError."""
    try:
        return json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError, OverflowError) as exc:
        kind = "nested too deeply" if isinstance(exc, RecursionError) else f"{type(exc).__name__}: {exc}"
        raise CheckpointError(f"{path} is corrupt or not a zoo config ({kind}); re-save the checkpoint.") from exc


def _number(path: Path, key: str, value: Any, *, positive: bool = False, optional: bool = False) -> None:
    if optional and value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (value > 0 or not positive)
    if not ok:
        raise CheckpointError(f"{path}: {key} must be a finite{' positive' if positive else ''} number, got "
                              f"{value!r}; the config is corrupt. Re-save the checkpoint.")


def check_config(path: Path, config: Any, format_version: int) -> int:
    """Validate ``config.json``'s values; return its format version."""
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) \
            or not isinstance(config["model"].get("towers"), dict):
        raise CheckpointError(f"{path} is corrupt or not a zoo config (expected an object with model.towers); "
                              f"re-save the checkpoint.")
    version = config.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise CheckpointError(f"{path}: format_version must be a non-negative integer, got {version!r}; the config "
                              f"is corrupt. Re-save the checkpoint.")
    if version > format_version:
        return version  # the caller says which zoo wrote it
    model = config["model"]
    embed = model.get("embed_dim")
    if not isinstance(embed, int) or isinstance(embed, bool) or embed <= 0:
        raise CheckpointError(f"{path}: model.embed_dim must be a positive integer, got {embed!r}; re-save the "
                              f"checkpoint.")
    _number(path, "model.logit_scale", model.get("logit_scale", 0.0))
    _number(path, "model.logit_bias", model.get("logit_bias"), optional=True)
    _number(path, "model.max_logit_scale", model.get("max_logit_scale", 100.0), positive=True)
    for key, tower in model["towers"].items():
        check_key(key)
        if not isinstance(tower, dict):
            raise CheckpointError(f"{path}: model.towers.{key} must be an object, got {type(tower).__name__}.")
    return version


def machine_memory() -> int:
    """Bytes of physical memory (0 when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_fits(directory: Path, model_config, weights: Path | None) -> None:
    """Build the model on the ``meta`` device (no memory), refuse it when its parameters exceed the
    machine's memory, and compare the weights file's header (names, shapes, dtypes) with it — all
    before a byte is allocated. Encoders that cannot be built on ``meta`` skip this check (the real
    build and the strict load still check them)."""
    import torch

    from zoo.hub.format import _without_pretrained
    from zoo.model import ContrastiveModel
    try:
        with torch.device("meta"):
            meta = ContrastiveModel(_without_pretrained(model_config), assets_dir=directory / "assets")
    except Exception:  # noqa: BLE001 - an encoder that needs real tensors or files: the real build reports it
        return
    state = meta.state_dict()
    need = sum(t.numel() * t.element_size() for t in state.values())
    have = machine_memory()
    if have and need > have:
        raise CheckpointError(f"{directory / 'config.json'} describes a model of {need / 2**30:.1f} GiB of parameters; "
                              f"this machine has {have / 2**30:.1f} GiB of memory. The config is corrupt or the model "
                              f"is for a bigger machine.")
    if weights is None or not weights.is_file():
        return
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(str(weights), framework="pt") as f:
            header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read weights {weights}: {exc}. The file is missing, truncated or not "
                              f"safetensors; re-save or re-download it.") from exc
    missing = sorted(set(state) - set(header))
    unexpected = sorted(set(header) - set(state))
    shapes = [f"{k}: checkpoint {header[k][0]} vs model {tuple(t.shape)}" for k, t in state.items()
              if k in header and header[k][0] != tuple(t.shape)]
    dtypes = [f"{k}: checkpoint {header[k][1]} vs model {str(t.dtype).removeprefix('torch.')}" for k, t in state.items()
              if k in header and t.is_floating_point() != header[k][1].startswith(("F", "BF"))]
    if missing or unexpected or shapes or dtypes:
        from zoo.hub.format import _short
        parts = [f"missing keys {_short(missing)}" if missing else "",
                 f"unexpected keys {_short(unexpected)}" if unexpected else "",
                 f"shape mismatches {_short(shapes)}" if shapes else "",
                 f"dtype mismatches (float vs integer) {_short(dtypes)}" if dtypes else ""]
        raise CheckpointError(f"{weights} does not fit the architecture: {'; '.join(p for p in parts if p)}. "
                              f"The config and the weights disagree; load with the config it was saved with.")
