"""``sentence-transformers``: a text tower as a SentenceTransformer folder.

Layout written (what ``SentenceTransformer(dir)`` reads)::

    modules.json                 Transformer → Pooling → [Dense… / Normalize…] → Normalize
    config.json, model.safetensors, tokenizer files, sentence_bert_config.json   (the transformer, at the root)
    1_Pooling/config.json
    2_Dense/{config.json, model.safetensors}    one per linear layer (the tower's own Dense layers, its projection)
    k_Normalize/

The encoder's ``sentence_transformers_parts()`` returns ``{"transformer", "tokenizer", "pooling",
"dense": [(nn.Linear, activation)], "normalize", "max_seq_length", "do_lower_case"}``; the zoo
tower's projection becomes Dense layers and a final Normalize gives ``model.encode``'s
L2-normalised output, so ``SentenceTransformer(dir).encode(texts)`` equals
``model.encode("text", texts)``.
"""
from __future__ import annotations

import json
from pathlib import Path

from zoo.files import atomic_write_text
from zoo.hub.export import ExportError, exporter, parts, pick_tower, projection_layers

ST_MODES = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens", "mean": "pooling_mode_mean_tokens",
            "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
            "weightedmean": "pooling_mode_weightedmean_tokens", "lasttoken": "pooling_mode_lasttoken"}
TYPE = "sentence_transformers.models.{}"


@exporter("sentence-transformers")
def export_sentence_transformers(model, directory: Path, *, tower: str | None = None) -> Path:
    """Write the text tower ``tower`` (default: the model's only text tower)."""
    key = pick_tower(model, "text", tower, "sentence-transformers")
    p = parts(model, key, "sentence_transformers_parts", "sentence-transformers")
    order = list(ST_MODES)
    if [m for m in order if m in p["pooling"]] != list(p["pooling"]) or any(m not in ST_MODES for m in p["pooling"]):
        raise ExportError(f"tower {key!r}: pooling {p['pooling']} cannot be written; sentence-transformers "
                          f"concatenates pooling modes in the order {order}.")
    chain: list[tuple[str, object]] = [("Dense", d) for d in p["dense"]]
    if p["normalize"]:
        chain.append(("Normalize", None))
    chain += [("Dense", d) for d in projection_layers(model, key)]
    if not chain or chain[-1][0] != "Normalize":
        chain.append(("Normalize", None))  # model.encode's L2 normalisation

    directory.mkdir(parents=True, exist_ok=True)
    p["transformer"].save_pretrained(directory, safe_serialization=True)
    p["tokenizer"].save_pretrained(directory)
    atomic_write_text(directory / "sentence_bert_config.json", json.dumps(
        {"max_seq_length": int(p["max_seq_length"]), "do_lower_case": bool(p["do_lower_case"])}, indent=2))
    hidden = int(p["transformer"].config.hidden_size)
    modules = [{"idx": 0, "name": "0", "path": "", "type": TYPE.format("Transformer")},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": TYPE.format("Pooling")}]
    _write_json(directory / "1_Pooling", {"word_embedding_dimension": hidden,
                                          **{flag: mode in p["pooling"] for mode, flag in ST_MODES.items()}})
    for idx, (kind, layer) in enumerate(chain, start=2):
        path = f"{idx}_{kind}"
        modules.append({"idx": idx, "name": str(idx), "path": path, "type": TYPE.format(kind)})
        (directory / path).mkdir(exist_ok=True)
        if kind == "Dense":
            _write_dense(directory / path, *layer)
    atomic_write_text(directory / "modules.json", json.dumps(modules, indent=2))
    atomic_write_text(directory / "config_sentence_transformers.json", json.dumps(
        {"similarity_fn_name": "cosine", "prompts": {}, "default_prompt_name": None}, indent=2))
    return directory


def _write_json(folder: Path, data: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.json", json.dumps(data, indent=2))


def _write_dense(folder: Path, linear, activation) -> None:
    from zoo.hub.format import save_weights
    act = type(activation)
    _write_json(folder, {"in_features": linear.in_features, "out_features": linear.out_features,
                         "bias": linear.bias is not None, "activation_function": f"{act.__module__}.{act.__name__}"})
    state = {"linear.weight": linear.weight.detach().float().contiguous()}
    if linear.bias is not None:
        state["linear.bias"] = linear.bias.detach().float().contiguous()
    save_weights(state, folder / "model.safetensors")
