"""A checkpoint never runs code: find the files of a folder that hold code or ask for it.

transformers runs a repository's own Python (``auto_map`` in ``config.json``,
``tokenizer_config.json``… pointing at a ``*.py`` beside it) when ``trust_remote_code`` is
true, and *asks in the terminal* when it is left unset. The zoo passes
``trust_remote_code=False`` to every transformers call, never downloads or copies ``*.py``
files, and refuses a folder that asks for code before anything reads it, naming the file::

    refuse_code(directory / "assets", "local-dir:/path")   # CheckpointError naming config.json / evil.py

Libraries that call transformers without the argument (open_clip's HF text towers and
tokenizers) run inside :func:`no_remote_code`, where transformers refuses instead of asking.

An ``auto_map`` next to a ``model_type`` that transformers implements itself is harmless
(transformers uses its own class and never the code), so it is allowed: checkpoints of such
models, saved with their config, keep loading.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zoo.errors import CheckpointError

# files that are code: never downloaded (hf-hub:), copied (zoo push) or accepted in a checkpoint's assets
CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyd", ".so", ".dylib", ".dll")
CODE_PATTERNS = [f"*{s}" for s in CODE_SUFFIXES] + [f"**/*{s}" for s in CODE_SUFFIXES]
_MAX_JSON = 64 << 20  # larger JSON files (tokenizer.json of big vocabularies) are read only for "auto_map"


def code_requests(directory: str | os.PathLike, *, code_files: bool = True) -> list[str]:
    """``"<file>: <why>"`` for each file under ``directory`` that asks for custom code (an ``auto_map``
    transformers cannot serve with its own classes) and, with ``code_files``, each file that is code."""
    root = Path(directory)
    if not root.is_dir():
        return []
    found = []
    files = sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())
    for path in files:
        if path.suffix == ".json":
            why = _asks_for_code(path)
            if why:
                found.append(f"{path}: {why}")
    if code_files:
        found += [f"{p}: a code file ({p.suffix})" for p in files if p.suffix.lower() in CODE_SUFFIXES]
    return found


def refuse_code(directory: str | os.PathLike, what: str, *, code_files: bool = True) -> None:
    """Raise a :class:`CheckpointError` naming every file of ``directory`` that holds or asks for code."""
    found = code_requests(directory, code_files=code_files)
    if found:
        raise CheckpointError(
            f"{what} asks to run its own code, which the zoo never does (trust_remote_code is always False): "
            f"{'; '.join(found)}. If the model needs no custom code, delete the auto_map entry and the code "
            f"files; otherwise read the code and load the model with transformers itself.")


@contextmanager
def no_remote_code(what: str) -> Iterator[None]:
    """Run a library that calls transformers without ``trust_remote_code`` (open_clip): inside, transformers
    raises instead of prompting "Do you wish to run the custom code? [y/N]", and that refusal becomes a
    :class:`CheckpointError`. Imports transformers (only use it where it is needed anyway)."""
    try:
        from transformers import dynamic_module_utils as dmu
    except ImportError:
        yield
        return
    saved = dmu.TIME_OUT_REMOTE_CODE
    dmu.TIME_OUT_REMOTE_CODE = 0  # transformers' own switch: no prompt, an error
    try:
        yield
    except ValueError as exc:
        if "trust_remote_code" not in str(exc):
            raise
        raise CheckpointError(f"{what} asks to run custom code from the Hub or a folder, which the zoo never does "
                              f"(trust_remote_code is always False): {exc}".rstrip()) from exc
    finally:
        dmu.TIME_OUT_REMOTE_CODE = saved


def uses_transformers(model_cfg: dict) -> bool:
    """Whether an open_clip model config builds a transformers text tower or tokenizer."""
    text = model_cfg.get("text_cfg", {}) if isinstance(model_cfg, dict) else {}
    return isinstance(text, dict) and any(text.get(k) for k in ("hf_model_name", "hf_tokenizer_name"))


def _asks_for_code(path: Path) -> str | None:
    try:
        if path.stat().st_size > _MAX_JSON and b'"auto_map"' not in path.read_bytes():
            return None
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None  # unreadable JSON is the loader's to report; it cannot ask for code through transformers
    if not isinstance(data, dict) or not data.get("auto_map"):
        return None
    model_type = data.get("model_type") or _sibling_model_type(path)
    if model_type is not None and _transformers_knows(model_type):
        return None
    targets = sorted({str(v) for v in _values(data["auto_map"])})
    return (f"auto_map {targets[:4]} for model_type {model_type!r}, which transformers does not implement, "
            f"so loading it would run the repository's Python")


def _sibling_model_type(path: Path) -> str | None:
    config = path.parent / "config.json"
    if config == path or not config.is_file():
        return None
    try:
        data = json.loads(config.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("model_type") if isinstance(data, dict) else None


def _transformers_knows(model_type: object) -> bool:
    try:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    except ImportError:
        return False
    return isinstance(model_type, str) and model_type in CONFIG_MAPPING


def _values(obj) -> list:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _values(v)]
    if isinstance(obj, (list, tuple)):
        return [x for v in obj for x in _values(v)]
    return [obj]
