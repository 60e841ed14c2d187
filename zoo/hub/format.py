"""Checkpoints in the zoo layout, and the ``local-dir:`` / ``hf-hub:`` sources.

A zoo checkpoint is a directory (or a Hub repo) holding::

    config.json         {"format_version", "zoo_version", "model": ModelConfig, "plugins", "preprocess"}
    model.safetensors   weights (never pickle)
    assets/<tower>/     files an encoder needs (tokenizer, …), when it has any
    recipe.toml         the recipe that trained it (optional)
    README.md           model card (optional)
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from zoo.errors import CheckpointError, DeviceError, ZooError
from zoo.files import atomic_write_text, follow_umask, fsync_dir
from zoo.hookspecs import hookimpl
from zoo.hub.integrity import MANIFEST, check_config, check_fits, check_key, read_json, verify_manifest, write_manifest
from zoo.hub.remote_code import CODE_PATTERNS, refuse_code

FORMAT_VERSION = 1
CONFIG, WEIGHTS = "config.json", "model.safetensors"


def zoo_version() -> str:
    from zoo import __version__
    return __version__


def plugin_versions() -> dict[str, str]:
    from zoo.plugins import get_plugin_manager
    return {n: p.version for n, p in get_plugin_manager().plugins.items() if p.ok}


def state_for_saving(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state_dict`` made contiguous, with tensors that share storage cloned (safetensors refuses sharing)."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for k, v in module.state_dict().items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset()) if v.numel() else (id(v), 0)
        out[k] = v.detach().clone().contiguous() if key in seen or not v.is_contiguous() else v.detach()
        seen.add(key)
    return out


def save_weights(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically (temp file, fsync, rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        follow_umask(tmp)  # mkstemp's 0600 → what the user's umask gives (colleagues may read the run)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(path.parent)


def save_pretrained(model, directory: str | os.PathLike, *, recipe_text: str | None = None,
                    metrics: dict[str, Any] | None = None, card: bool = True) -> Path:
    """Write ``model`` in the zoo layout. Every file is written atomically; config.json goes last."""
    directory = Path(directory)
    for key in model.towers:
        check_key(key)  # assets/<key> stays inside the directory
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)  # a save cut half-way leaves no stale manifest
    save_weights(state_for_saving(model), directory / WEIGHTS, metadata={"format": "pt", "zoo": zoo_version()})
    preprocess = {}
    for key, tower in model.towers.items():
        if hasattr(tower.encoder, "save_assets"):
            tower.encoder.save_assets(directory / "assets" / key)
        if hasattr(tower.encoder, "preprocess_config"):
            preprocess[key] = tower.encoder.preprocess_config()
    if recipe_text is not None:
        atomic_write_text(directory / "recipe.toml", recipe_text)
    if card:
        from zoo.hub.card import model_card
        atomic_write_text(directory / "README.md", model_card(model, recipe_text=recipe_text, metrics=metrics))
    config = {"format_version": FORMAT_VERSION, "zoo_version": zoo_version(), "model": model.config.to_dict(),
              "preprocess": preprocess, "plugins": plugin_versions(),
              "origins": list(getattr(model, "origins", []))}  # pretrained sources it was built from (model card)
    atomic_write_text(directory / CONFIG, json.dumps(config, indent=2, sort_keys=True, default=str))
    write_manifest(directory, [WEIGHTS, CONFIG])  # last: the SHA-256 zoo.load verifies
    return directory


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: {directory} is not a zoo checkpoint "
                              f"(expected {CONFIG} and {WEIGHTS}; save one with model.save_pretrained(dir)).")
    config = read_json(path)
    version = check_config(path, config, FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by zoo {config.get('zoo_version', '?')} (format {version}); this "
                              f"zoo {zoo_version()} reads format ≤ {FORMAT_VERSION}. Upgrade: pip install -U zoo.")
    return config


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A safetensors file → ``{name: tensor}`` (CPU); unreadable is a :class:`CheckpointError`."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read weights {path}: {exc}. The file is missing, truncated or not "
                              f"safetensors; re-save or re-download it.") from exc


def load_weights_strict(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load safetensors into ``model``; missing, unexpected or mis-shaped keys are an error naming them."""
    state = read_weights(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"missing keys {_short(missing)}" if missing else "",
                 f"unexpected keys {_short(unexpected)}" if unexpected else "",
                 f"shape mismatches {_short(shapes)}" if shapes else ""]
        raise CheckpointError(f"{path} does not fit the architecture: {'; '.join(p for p in parts if p)}. "
                              f"The config and the weights disagree; load with the config it was saved with.")
    model.load_state_dict(state, strict=True)


def _short(items: list[str], n: int = 8) -> str:
    return "[" + ", ".join(items[:n]) + (f", … {len(items) - n} more" if len(items) > n else "") + "]"


def load_local(directory: str | os.PathLike, *, pretrained: bool = True, device=None, dtype=None):
    """Rebuild a model from a zoo checkpoint directory (registry + config) and load its weights."""
    from zoo.model import ContrastiveModel, ModelConfig
    directory = Path(directory)
    device = check_device(device)
    config = read_config(directory)
    refuse_code(directory / "assets", f"the checkpoint {directory}")  # before any library reads an asset
    try:
        model_config = ModelConfig.from_dict(config["model"])
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{directory / CONFIG}: the model section does not describe a zoo model ({exc}); "
                              f"re-save the checkpoint with model.save_pretrained.") from exc
    check_fits(directory, model_config, directory / WEIGHTS if pretrained else None)  # before any allocation
    verify_manifest(directory)  # after the checks that name a specific problem: what is left is corruption
    try:
        model = ContrastiveModel(_without_pretrained(model_config), assets_dir=directory / "assets")
        model.config = model_config
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
        if isinstance(exc, ZooError):
            raise
        raise CheckpointError(f"{directory / CONFIG}: cannot build the model it describes "
                              f"({type(exc).__name__}: {exc}); the config is corrupt or from another zoo.") from exc
    for key, tower in model.towers.items():
        assets = directory / "assets" / key
        if assets.is_dir() and hasattr(tower.encoder, "load_assets"):
            tower.encoder.load_assets(assets)
    if pretrained:
        load_weights_strict(model, directory / WEIGHTS)
        model.source = f"local-dir:{directory}"
    model.origins = list(config.get("origins") or [])
    if device is not None or dtype is not None:
        from zoo.inference import as_dtype
        model.to(device=device, dtype=as_dtype(dtype))
    return model


def check_device(device) -> torch.device | None:
    """``device`` as a ``torch.device`` this machine has, checked before anything is loaded; ``None`` stays."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise DeviceError(f"device {device!r} is not a torch device ({exc}); use 'cpu', 'cuda', 'cuda:1' or 'mps'.") from exc
    if dev.type == "cpu":
        return dev
    if dev.type == "meta":
        raise DeviceError("device 'meta' holds no data, so a loaded model cannot live there; use 'cpu' or 'cuda'.")
    backend = getattr(torch, dev.type, None) if dev.type != "mps" else torch.backends.mps
    available = bool(backend is not None and hasattr(backend, "is_available") and backend.is_available())
    count = backend.device_count() if available and hasattr(backend, "device_count") else 1
    if not available or (dev.index is not None and dev.index >= count):
        have = f"torch.{dev.type}.is_available() is False" if not available else f"only {count} {dev.type} device(s)"
        raise DeviceError(f"device {str(device)!r} is not available on this machine ({have}: no such accelerator, or "
                          f"torch {torch.__version__} was built without it). Load on the CPU (device='cpu' or leave "
                          f"device out), or use a machine and a torch build with that accelerator.")
    return dev


def _without_pretrained(config):
    """The same architecture with encoder ``pretrained`` switched off: a checkpoint's own
    model.safetensors holds every weight, so the original weight files need not exist any more.
    (The encoder contract: with ``pretrained=False`` an encoder ignores its options that only say
    where pretrained weights come from, such as a local weight file.)"""
    import copy
    config = copy.deepcopy(config)
    for tower in config.towers.values():
        if tower.encoder_kwargs.get("pretrained"):
            tower.encoder_kwargs["pretrained"] = False
    return config


def resolve_local_dir(name: str, *, pretrained: bool = True):
    return load_local(os.path.expanduser(name), pretrained=pretrained)


def resolve_hf_hub(name: str, *, pretrained: bool = True):
    """``hf-hub:org/repo[@revision]`` → download (or read from the cache) and load."""
    from huggingface_hub import snapshot_download
    repo, _, revision = name.partition("@")
    try:
        path = snapshot_download(repo_id=repo, revision=revision or None,
                                 allow_patterns=[CONFIG, WEIGHTS, "assets/*", "assets/**", "recipe.toml", "README.md"],
                                 ignore_patterns=CODE_PATTERNS)  # never download code
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many kinds
        raise CheckpointError(f"cannot fetch hf-hub:{name}: {type(exc).__name__}: {exc}. Check the repo id and "
                              f"revision, your network, or HF_HUB_OFFLINE and the cache ({_cache_dir()}).") from exc
    model = load_local(path, pretrained=pretrained)
    model.source = f"hf-hub:{repo}@{revision or 'main'} ({path})"
    return model


def _cache_dir() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE
    return str(HF_HUB_CACHE)


def push_to_hub(model, repo_id: str, *, private: bool | None = None, commit_message: str = "Upload zoo model",
                recipe_text: str | None = None, metrics: dict[str, Any] | None = None, token: str | None = None,
                api=None):
    """Save ``model`` to a temporary folder and upload it with ``huggingface_hub``."""
    from huggingface_hub import HfApi
    api = api or HfApi(token=token)
    from zoo.hub.card import model_card
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp, recipe_text=recipe_text, metrics=metrics, card=False)
        atomic_write_text(Path(tmp) / "README.md", model_card(model, recipe_text=recipe_text, metrics=metrics,
                                                               repo_id=repo_id))
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            return api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message)
        except Exception as exc:  # noqa: BLE001 - network, offline mode, auth and Hub errors all stop the push
            raise CheckpointError(
                f"cannot push to the Hub repo {repo_id}: {type(exc).__name__}: {exc}. The Hugging Face Hub is "
                f"unreachable (no network, a proxy, or HF_HUB_OFFLINE=1) or refused the login/repo; nothing was "
                f"uploaded and the model is untouched. Save it locally with model.save_pretrained('DIR') and push "
                f"that later with `zoo push DIR {repo_id}` (log in with `hf auth login` or pass token=…).") from exc


@hookimpl
def zoo_register_pretrained(register):
    register("local-dir", resolve_local_dir, description="a zoo checkpoint directory: local-dir:<path>")
    register("hf-hub", resolve_hf_hub, description="a zoo checkpoint on the Hugging Face Hub: hf-hub:<org>/<repo>[@rev]")
