"""``text/st``: a sentence-transformers model (Transformer → Pooling → Dense… → Normalize) as a tower.

    enc = zoo.create_encoder("text", "st", source="all-MiniLM-L6-v2")   # the copy bundled offline
    z = enc(enc.preprocess(["a dog", "a cat"]))                           # (2, 384), as SentenceTransformer.encode

The sentence-transformers folder layout (``modules.json``, ``sentence_bert_config.json``,
``1_Pooling/config.json``, ``2_Dense/…``) is read into a small JSON spec: the transformer's own
config and tokenizer, the pooling modes (cls, max, mean, mean_sqrt_len_tokens, weightedmean,
lasttoken — several are concatenated in that order, as sentence-transformers does), the Dense
layers, whether the output is normalised, and the prompts of ``config_sentence_transformers.json``
(``prompts``, ``default_prompt_name``: ``model.encode("text", texts, prompt_name="query")``; the
default prompt applies when none is named, in training too, as in ``SentenceTransformer.encode``).
A module or an option the spec cannot express is an error naming it, never skipped. ``save_assets`` writes the transformer config, the tokenizer
and ``st_config.json`` (the spec), so the tower rebuilds offline from a zoo checkpoint.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.checks import require
from zoo.errors import CheckpointError, PluginError, RecipeError, ShapeError, UnknownNameError

from ._weights import set_checkpointing

SPEC_FILE = "st_config.json"
MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
LEGACY = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
          "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
          "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
ACTIVATIONS = {"Tanh": nn.Tanh, "Identity": nn.Identity, "ReLU": nn.ReLU, "GELU": nn.GELU, "Sigmoid": nn.Sigmoid}
# sentence_bert_config.json keys that are harmless at these values (anything else is refused, not dropped)
TRANSFORMER_DEFAULTS = {"model_args": {}, "tokenizer_args": {}, "config_args": {}, "cache_dir": None,
                        "backend": "torch", "transformer_task": "feature-extraction", "processing_kwargs": {}}
MODEL_CONFIG = "config_sentence_transformers.json"
# config_sentence_transformers.json keys with no effect on the embeddings; any other key must be read or refused
MODEL_CONFIG_INERT = ("__version__", "requirements")


# -- reading the sentence-transformers layout -------------------------------------------------------------
def read_spec(folder: Path) -> dict[str, Any]:
    """The JSON spec of a sentence-transformers folder (see the module docstring)."""
    modules = _read_json(folder / "modules.json", folder)
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if not kinds or kinds[0] != "Transformer" or any(k not in ("Transformer", "Pooling", "Dense", "Normalize")
                                                       for k in kinds) or kinds.count("Transformer") != 1:
        raise PluginError(f"st: {folder} has modules {kinds}; the zoo's st tower reads Transformer → Pooling → "
                          f"Dense… → Normalize. Load other layouts with sentence_transformers itself.")
    spec: dict[str, Any] = {"pooling": ["cls"], "dense": [], "normalize": False, "transformer_path": modules[0]["path"]}
    spec.update(_transformer_options(folder / modules[0]["path"]))
    spec.update(model_options(folder, normalized="Normalize" in kinds))
    for m, kind in zip(modules[1:], kinds[1:]):
        sub = folder / m["path"]
        if kind == "Pooling":
            spec["pooling"] = pooling_modes(_read_json(sub / "config.json", folder))
        elif kind == "Dense":
            spec["dense"].append({**dense_options(_read_json(sub / "config.json", folder)), "path": m["path"]})
        else:
            spec["normalize"] = True
    return spec


def _read_json(path: Path, folder: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise PluginError(f"st: {folder} is not a readable sentence-transformers folder: {path.name} ({exc}).") from exc


def _transformer_options(path: Path) -> dict[str, Any]:
    cfg = json.loads((path / "sentence_bert_config.json").read_text("utf-8")) \
        if (path / "sentence_bert_config.json").is_file() else {}
    extra = {k: v for k, v in cfg.items() if k not in ("max_seq_length", "do_lower_case")
             and TRANSFORMER_DEFAULTS.get(k, object()) != v}
    if extra:
        raise PluginError(f"st: sentence_bert_config.json sets {sorted(extra)}, which the zoo's st tower does not "
                          f"implement; it refuses rather than ignore them.")
    return {"max_seq_length": cfg.get("max_seq_length"), "do_lower_case": bool(cfg.get("do_lower_case", False))}


def model_options(folder: Path, normalized: bool) -> dict[str, Any]:
    """Prompts and default prompt of ``config_sentence_transformers.json``; options that change the embeddings
    or the similarity in ways the zoo cannot express (truncate_dim, a non-cosine similarity…) are refused."""
    path = folder / MODEL_CONFIG
    cfg = _read_json(path, folder) if path.is_file() else {}
    prompts = cfg.get("prompts") or {}
    default = cfg.get("default_prompt_name")
    similarity = cfg.get("similarity_fn_name") or "cosine"
    refused = {k: v for k, v in cfg.items() if k not in (*MODEL_CONFIG_INERT, "prompts", "default_prompt_name",
                                                          "similarity_fn_name", "model_type")}
    if cfg.get("model_type", "SentenceTransformer") != "SentenceTransformer":
        refused["model_type"] = cfg["model_type"]
    if similarity not in ("cosine", "dot") or similarity == "dot" and not normalized:
        refused["similarity_fn_name"] = similarity  # the zoo scores by cosine; dot equals it on unit vectors only
    if refused:
        raise CheckpointError(f"st: {path} sets {refused}, which the zoo's st tower cannot express; it refuses rather "
                              f"than give different embeddings or scores. Load this model with sentence_transformers.")
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise CheckpointError(f"st: {path}: prompts must map names to strings, got {prompts!r}.")
    if default is not None and default not in prompts:
        raise CheckpointError(f"st: {path}: default_prompt_name {default!r} is not one of the prompts {list(prompts)}.")
    return {"prompts": dict(prompts), "default_prompt_name": default}


def pooling_modes(cfg: dict[str, Any]) -> list[str]:
    """``pooling_mode`` (new) or the ``pooling_mode_*`` flags (legacy), in sentence-transformers' order."""
    if cfg.get("include_prompt", True) is False:
        raise PluginError("st: pooling with include_prompt = false (prompt-aware pooling) is not supported.")
    if "pooling_mode" in cfg and not isinstance(cfg["pooling_mode"], bool):
        modes = [cfg["pooling_mode"]] if isinstance(cfg["pooling_mode"], str) else list(cfg["pooling_mode"])
    else:
        modes = [mode for key, mode in LEGACY.items() if cfg.get(key)]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise PluginError(f"st: pooling modes {modes} not understood; known: {', '.join(MODES)}.")
    return modes


def dense_options(cfg: dict[str, Any]) -> dict[str, Any]:
    act = str(cfg.get("activation_function", "torch.nn.modules.activation.Tanh")).rsplit(".", 1)[-1]
    if act not in ACTIVATIONS or cfg.get("use_residual"):
        raise PluginError(f"st: Dense layer with activation {cfg.get('activation_function')!r}"
                          f"{' and a residual' if cfg.get('use_residual') else ''} is not supported "
                          f"(activations: {', '.join(ACTIVATIONS)}).")
    return {"in_features": int(cfg["in_features"]), "out_features": int(cfg["out_features"]),
            "bias": bool(cfg.get("bias", True)), "activation": act}


# -- the tower ----------------------------------------------------------------------------------------------
class Dense(nn.Module):
    """sentence-transformers' Dense: ``activation(linear(x))`` (keys ``linear.weight`` / ``linear.bias``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "Tanh"):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.linear(x))


def pool(tokens: Tensor, mask: Tensor, modes: list[str]) -> Tensor:
    """``(B, L, H)`` token states under a ``(B, L)`` mask → ``(B, H · len(modes))``."""
    m = mask.unsqueeze(-1).to(tokens.dtype)  # (B, L, 1)
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(tokens[torch.arange(tokens.shape[0]), mask.to(torch.int).argmax(dim=1)])
        elif mode == "max":
            out.append(tokens.masked_fill(m == 0, float("-inf")).max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            count = m.sum(dim=1).clamp(min=1e-9)  # (B, 1)
            out.append((tokens * m).sum(dim=1) / (count if mode == "mean" else count.sqrt()))
        elif mode == "weightedmean":
            w = torch.arange(1, tokens.shape[1] + 1, device=tokens.device, dtype=tokens.dtype).view(1, -1, 1)
            w = (w - mask.to(torch.int).argmax(dim=1).view(-1, 1, 1)) * m  # positions counted from the first token
            out.append((tokens * w).sum(dim=1) / w.sum(dim=1).clamp(min=1e-9))
        else:  # lasttoken
            values, idx = mask.flip(1).max(1)
            idx = torch.where(values == 0, mask.shape[1] - 1, idx)
            out.append((tokens * m)[torch.arange(tokens.shape[0]), mask.shape[1] - idx - 1])
    return torch.cat(out, dim=-1)


class SentenceTransformerEncoder(nn.Module):
    """Texts → tokenizer → transformer → pooling → Dense… (→ L2 norm): ``(B, output_dim)``."""

    def __init__(self, hf_config, tokenizer, spec: dict[str, Any]):
        super().__init__()
        self.transformer = without_pooler(hf_config)
        self.tokenizer, self.spec = tokenizer, spec
        self.dense = nn.ModuleList(Dense(**{k: d[k] for k in ("in_features", "out_features", "bias", "activation")})
                                   for d in spec["dense"])
        self.output_dim = spec["dense"][-1]["out_features"] if spec["dense"] else \
            int(hf_config.hidden_size) * len(spec["pooling"])
        limit = getattr(hf_config, "max_position_embeddings", None)
        self.max_length = min(x for x in (spec["max_seq_length"], tokenizer.model_max_length, limit) if x)

    def prompt(self, prompt_name: str | None = None) -> str:
        """The text put before every input: the named prompt, else the default prompt, else none."""
        prompts = self.spec.get("prompts") or {}
        if prompt_name is None:
            prompt_name = self.spec.get("default_prompt_name")
            if prompt_name is None:
                return ""
        if prompt_name not in prompts:
            raise UnknownNameError("prompt", prompt_name, list(prompts),
                                   hint=f"This model's prompts are {prompts or 'none'} "
                                        f"(config_sentence_transformers.json).")
        return prompts[prompt_name]

    def _texts(self, raws: list[Any], prompt_name: str | None) -> list[str]:
        prompt = self.prompt(prompt_name)
        texts = [prompt + str(r) for r in raws]
        return [t.lower() for t in texts] if self.spec["do_lower_case"] else texts

    def preprocess(self, raws: list[Any], prompt_name: str | None = None) -> dict[str, Tensor]:
        enc = self.tokenizer(self._texts(raws, prompt_name), padding=True, truncation="longest_first",
                             max_length=self.max_length, return_tensors="pt")
        return dict(enc.items())  # {input_ids: (B, L), attention_mask: (B, L), …}

    def preprocess_items(self, raws: list[Any], prompt_name: str | None = None) -> tuple[list[dict], list[int]]:
        """Every text tokenised in one (fast, batched) tokenizer call, unpadded, and its token count:
        ``encode`` sorts by token count and pads each batch with :meth:`collate_items` — fewer pad tokens
        than sorting by characters, and no second tokenisation."""
        enc = self.tokenizer(self._texts(raws, prompt_name), truncation="longest_first", max_length=self.max_length)
        keys = list(enc.keys())
        items = [{k: enc[k][i] for k in keys} for i in range(len(raws))]
        return items, [len(it["input_ids"]) for it in items]

    def collate_items(self, items: list[dict]) -> dict[str, Tensor]:
        """Token items → the batch :meth:`preprocess` gives for the same texts (padded on the tokenizer's side)."""
        width = max(len(it["input_ids"]) for it in items)
        pads = {"input_ids": self.tokenizer.pad_token_id or 0,
                "token_type_ids": getattr(self.tokenizer, "pad_token_type_id", 0)}
        left = self.tokenizer.padding_side == "left"
        out = {}
        for key in items[0]:
            t = torch.full((len(items), width), pads.get(key, 0), dtype=torch.long)  # (B, L)
            for i, it in enumerate(items):
                row = torch.as_tensor(it[key], dtype=torch.long)
                if left:
                    t[i, width - len(row):] = row
                else:
                    t[i, :len(row)] = row
            out[key] = t
        return out

    def preprocess_config(self) -> dict[str, Any]:
        return {"tokenizer": type(self.tokenizer).__name__, "max_length": self.max_length,
                "pooling": self.spec["pooling"], "normalize": self.spec["normalize"],
                "prompts": self.spec.get("prompts") or {}, "default_prompt_name": self.spec.get("default_prompt_name")}

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        if not isinstance(batch, dict) or "input_ids" not in batch or "attention_mask" not in batch:
            raise ShapeError(f"st: expected the dict its preprocess returns (input_ids, attention_mask), got "
                             f"{type(batch).__name__}; call preprocess(texts) first.")
        tokens = self.transformer(**batch, return_dict=True).last_hidden_state  # (B, L, H)
        x = pool(tokens, batch["attention_mask"], self.spec["pooling"])  # (B, H · modes)
        for layer in self.dense:
            x = layer(x)
        return nn.functional.normalize(x, dim=-1) if self.spec["normalize"] else x  # (B, output_dim)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        set_checkpointing(self.transformer, enable)

    def save_assets(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.transformer.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        (directory / SPEC_FILE).write_text(json.dumps(self.spec, indent=2), "utf-8")

    def load_assets(self, directory: str | Path) -> None:
        self.tokenizer = require("transformers", "text", "the pretrained sources").AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)

    def sentence_transformers_parts(self) -> dict[str, Any]:
        """This tower as sentence-transformers modules (for ``model.export("sentence-transformers", dir)``)."""
        return {"transformer": self.transformer, "tokenizer": self.tokenizer, "pooling": list(self.spec["pooling"]),
                "dense": [(d.linear, d.activation) for d in self.dense], "normalize": self.spec["normalize"],
                "max_seq_length": self.max_length, "do_lower_case": self.spec["do_lower_case"]}


def without_pooler(hf_config):
    """The transformer without the pooler head sentence-transformers never uses (an unused parameter would
    stall DDP); models that cannot drop it keep it."""
    tf = require("transformers", "text", "the pretrained sources")
    try:
        return tf.AutoModel.from_config(hf_config, add_pooling_layer=False, trust_remote_code=False)
    except TypeError:
        return tf.AutoModel.from_config(hf_config, trust_remote_code=False)


def build_st(source: str | None = None, revision: str | None = None,
             assets_dir: str | None = None) -> SentenceTransformerEncoder:
    """``text/st``: source=<name | org/name | directory> of a sentence-transformers model (architecture;
    ``zoo.load("st:…")`` loads the weights)."""
    tf = require("transformers", "text", "the pretrained sources")
    if assets_dir is not None and (Path(assets_dir) / SPEC_FILE).is_file():
        spec = json.loads((Path(assets_dir) / SPEC_FILE).read_text("utf-8"))
        return SentenceTransformerEncoder(tf.AutoConfig.from_pretrained(assets_dir, trust_remote_code=False),
                                          tf.AutoTokenizer.from_pretrained(assets_dir, trust_remote_code=False), spec)
    if source is None:
        raise RecipeError("text/st needs source=<sentence-transformers name or directory>.")
    from .st_source import folder_of
    folder = folder_of(source, revision)
    spec = read_spec(folder)
    inner = folder / spec["transformer_path"]
    return SentenceTransformerEncoder(tf.AutoConfig.from_pretrained(inner, trust_remote_code=False),
                                      tf.AutoTokenizer.from_pretrained(inner, trust_remote_code=False), spec)
