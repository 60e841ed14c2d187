"""Helpers shared by the pretrained sources: optional imports, Hub files, strict weight copies."""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from zoo.errors import CheckpointError, RecipeError


def split_revision(name: str) -> tuple[str, str | None]:
    """``org/repo@rev`` → ``("org/repo", "rev")``; an existing local path is never split."""
    if os.path.exists(os.path.expanduser(name)) or "@" not in name:
        return name, None
    repo, _, rev = name.rpartition("@")
    return repo, rev or None


def local_path(name: str) -> Path | None:
    """``name`` as an existing local file or directory, else ``None``."""
    path = Path(name).expanduser()
    return path if path.exists() else None


def hub_snapshot(repo: str, revision: str | None, what: str, allow_patterns: list[str] | None = None,
                 ignore_patterns: list[str] | None = None) -> Path:
    """A Hub repo's files through huggingface_hub (its cache, ``HF_HUB_OFFLINE``, revision pinning)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE
    try:
        return Path(snapshot_download(repo_id=repo, revision=revision, allow_patterns=allow_patterns,
                                      ignore_patterns=ignore_patterns))
    except Exception as exc:
        raise CheckpointError(
            f"{what}: cannot fetch {repo}@{revision or 'main'} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{exc}). Check the repo id and revision and your network; offline (HF_HUB_OFFLINE=1) the files must "
            f"already be in the cache {HF_HUB_CACHE}, or pass a local directory.") from exc


PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def require_safetensors(folder: Path, what: str, convert: str) -> None:
    """Refuse a weights folder without ``*.safetensors`` (only ``pytorch_model.bin``…), saying how to
    convert it: the zoo loads weights from safetensors only (a pickle can run code when read)."""
    if any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for pattern in PICKLED for p in folder.glob(pattern))
    if not pickled:
        return  # no weights at all: the loader says so
    raise CheckpointError(f"{what}: {folder} holds {', '.join(pickled)} but no *.safetensors weights; the zoo "
                          f"loads weights from safetensors only. Convert them once, in an environment you trust: "
                          f"{convert}")


def readme_license(directory: Path | None) -> str | None:
    """The ``license:`` of a model card's YAML header (README.md), if the directory has one."""
    if directory is None or not (directory / "README.md").is_file():
        return None
    from huggingface_hub import metadata_load
    try:
        meta = metadata_load(directory / "README.md") or {}
    except Exception:  # noqa: BLE001 - a malformed card only means "unknown"
        return None
    lic = meta.get("license")
    return str(lic) if lic else None


def origin(repo: str | None, folder: Path | None, citation: str = "") -> dict[str, Any]:
    """Where a pretrained model comes from, for model cards: its Hub repo (``base_model``), the
    ``license`` of its card (read from ``folder`` or the Hub cache, never the network) and ``citation``."""
    if folder is None and repo:
        from huggingface_hub import try_to_load_from_cache
        cached = try_to_load_from_cache(repo, "README.md")
        folder = Path(cached).parent if isinstance(cached, str) else None
    out = {"base_model": repo, "license": readme_license(folder), "citation": citation}
    return {k: v for k, v in out.items() if v}


def cached_models(accept: Callable[[Path], bool]) -> list[str]:
    """Model repos of the huggingface_hub cache with a snapshot folder that ``accept`` takes."""
    from huggingface_hub import scan_cache_dir
    try:
        repos = scan_cache_dir().repos
    except Exception:  # noqa: BLE001 - no cache yet
        return []
    return [r.repo_id for r in repos
            if r.repo_type == "model" and any(accept(Path(rev.snapshot_path)) for rev in r.revisions)]


def set_checkpointing(model, enable: bool) -> None:
    """transformers' activation checkpointing (non-reentrant), under its current or older name."""
    if not enable:
        getattr(model, "activation_checkpointing_disable", model.gradient_checkpointing_disable)()
        return
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise RecipeError(f"{type(model).__name__} does not support gradient checkpointing in transformers; "
                          f"set run.grad_checkpointing = false.")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def max_scale_for(logit_scale: float) -> float:
    """``max_logit_scale`` that keeps a pretrained temperature unclamped (at least CLIP's 100)."""
    return float(max(100.0, math.ceil(math.exp(logit_scale))))


def scalar(t: Tensor) -> float:
    """A one-element tensor (open_clip and SigLIP keep some as shape ``(1,)``) as a float."""
    if t.numel() != 1:
        raise CheckpointError(f"expected a scalar temperature or bias, got a tensor of shape {tuple(t.shape)}.")
    return float(t.reshape(()))


def copy_weights(model: torch.nn.Module, state: Mapping[str, Tensor], where: str) -> None:
    """Load an already-renamed state dict strictly: missing, unexpected or mis-shaped keys are named."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
              for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"missing {_short(missing)}" if missing else "", f"unexpected {_short(unexpected)}" if unexpected
                 else "", f"shape mismatches {_short(shapes)}" if shapes else ""]
        raise CheckpointError(f"{where}: the weights do not fit the architecture: {'; '.join(p for p in parts if p)}. "
                              f"The checkpoint and its config disagree; the zoo never loads a partial model.")
    with torch.no_grad():
        model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def rename(state: Mapping[str, Tensor], route: Callable[[str], str | None]) -> tuple[dict[str, Tensor], list[str]]:
    """``{route(k): v}``; keys ``route`` maps to ``None`` are returned as unclaimed."""
    out, unclaimed = {}, []
    for k, v in state.items():
        new = route(k)
        if new is None:
            unclaimed.append(k)
        else:
            out[new] = v
    return out, unclaimed


def check_loading_info(info: Mapping[str, Any], where: str, allow_missing: tuple[str, ...] = ()) -> None:
    """transformers' ``output_loading_info``: any missing, unexpected or mismatched key is an error."""
    missing = [k for k in info.get("missing_keys", []) if not k.startswith(allow_missing)]
    unexpected = list(info.get("unexpected_keys", []))
    mismatched = [str(m) for m in info.get("mismatched_keys", [])]
    errors = list(info.get("error_msgs", []))
    if missing or unexpected or mismatched or errors:
        parts = [f"missing {_short(sorted(missing))}" if missing else "",
                 f"unexpected {_short(sorted(unexpected))}" if unexpected else "",
                 f"mismatched {_short(mismatched)}" if mismatched else "", "; ".join(map(str, errors))]
        raise CheckpointError(f"{where}: the checkpoint does not fit its architecture: "
                              f"{'; '.join(p for p in parts if p)}. The zoo does not load partial weights; "
                              f"check that config.json and the weights belong together.")


def _short(items: list[str], n: int = 8) -> str:
    return "[" + ", ".join(items[:n]) + (f", … {len(items) - n} more" if len(items) > n else "") + "]"
