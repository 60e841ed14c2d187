"""``text/open_clip``: the text tower of an open_clip model, with its tokenizer.

    zoo.create_encoder("text", "open_clip:ViT-B-32")                                  # random init
    zoo.create_encoder("text", "open_clip:ViT-B-32", pretrained="laion2b_s34b_b79k")  # a tag or a file
    zoo.create_encoder("text", "open_clip:local-dir:/path/to/open_clip/checkpoint")   # config + weights
    zoo.create_encoder("text", "open_clip:ViT-B-32", embed_dim=16,
                       text_cfg={"width": 32, "heads": 2, "layers": 1, "context_length": 16})  # tiny

``text_cfg`` entries replace those of the architecture's text config and ``embed_dim`` its output
size; both change the architecture, so they cannot be combined with pretrained weights. Only the
text tower is kept (a pretrained model is built whole by open_clip, then its text weights taken).

Checkpoints: ``save_assets`` writes ``open_clip_config.json`` (the merged model config) and, for
Hugging Face tokenizers, the tokenizer files, so the asset folder is an open_clip ``local-dir``;
built with ``assets_dir=<that folder>`` the tower is rebuilt from it with no download.
"""
from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from zoo.checks import require
from zoo.errors import PluginError, RecipeError, ShapeError, UnknownNameError
from zoo.hub.remote_code import no_remote_code, uses_transformers

from .modality import texts_of

CONFIG_FILE = "open_clip_config.json"


def _open_clip():
    return require("open_clip", "text", "the text encoder 'open_clip'", package="open_clip_torch")


def model_config(arch: str, assets_dir: str | None) -> dict[str, Any]:
    """The open_clip model config (``embed_dim``, ``text_cfg``, …) from the assets or open_clip."""
    if assets_dir is not None and (Path(assets_dir) / CONFIG_FILE).is_file():
        return json.loads((Path(assets_dir) / CONFIG_FILE).read_text("utf-8"))["model_cfg"]
    oc = _open_clip()
    try:
        cfg = oc.get_model_config(arch)
    except (OSError, ValueError) as exc:
        raise PluginError(f"open_clip:{arch}: cannot read its config ({exc}).") from exc
    if cfg is None:
        raise UnknownNameError("open_clip architecture", arch, oc.list_models(),
                               hint="Use a name of open_clip.list_models(), local-dir:<dir> or hf-hub:<repo>.")
    return copy.deepcopy(cfg)


def text_state(full: nn.Module) -> dict[str, Tensor]:
    """The text-tower weights of a whole open_clip model (CLIP keeps them at the top level)."""
    sd = full.state_dict()
    if hasattr(full, "text"):  # CustomTextCLIP
        return {k[len("text."):]: v for k, v in sd.items() if k.startswith("text.")}
    return {k: v for k, v in sd.items() if not k.startswith("visual.") and k not in ("logit_scale", "logit_bias")}


class OpenClipTextEncoder(nn.Module):
    """An open_clip text tower: token ids ``(B, context_length)`` → ``(B, output_dim)``."""

    def __init__(self, text: nn.Module, tokenizer: Any, cfg: dict[str, Any]):
        super().__init__()
        self.text, self.tokenizer, self.model_cfg = text, tokenizer, cfg
        no_proj = getattr(text, "text_projection", True) is None
        self.output_dim = int(text.width if no_proj else cfg["embed_dim"])
        self.context_length = int(cfg["text_cfg"].get("context_length", 77))

    def preprocess(self, raws: list[Any]) -> Tensor:
        return self.tokenizer(texts_of(raws), context_length=self.context_length)  # (B, context_length)

    def preprocess_config(self) -> dict[str, Any]:
        return {"tokenizer": type(self.tokenizer).__name__, "context_length": self.context_length}

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 2 or tokens.shape[1] != self.context_length:
            raise ShapeError(f"open_clip text encoder: expected token ids (B, {self.context_length}), got "
                             f"{tuple(tokens.shape)}; use the encoder's preprocess(list_of_strings).")
        return self.text(tokens)  # (B, output_dim)

    def save_assets(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps({"model_cfg": self.model_cfg}, indent=2), "utf-8")
        if hasattr(self.tokenizer, "save_pretrained"):
            self.tokenizer.save_pretrained(directory)

    def load_assets(self, directory: str | Path) -> None:
        self.tokenizer = _open_clip().get_tokenizer(f"local-dir:{directory}")

    def open_clip_parts(self) -> dict[str, Any]:
        """This tower for ``model.export("open_clip", dir)``: open_clip's text module and config."""
        return {"module": self.text, "text_cfg": self.model_cfg["text_cfg"],
                "quick_gelu": bool(self.model_cfg.get("quick_gelu", False)), "tokenizer": self.tokenizer}


def build_open_clip(arch: str, *, pretrained: str | None = None, text_cfg: dict | None = None,
                    embed_dim: int | None = None, gradient_checkpointing: bool = False,
                    assets_dir: str | None = None) -> OpenClipTextEncoder:
    """``open_clip:<arch>`` (see the module docstring)."""
    oc = _open_clip()
    from_assets = assets_dir is not None and (Path(assets_dir) / CONFIG_FILE).is_file()
    cfg = model_config(arch, assets_dir)
    if (text_cfg or embed_dim) and not from_assets:
        if pretrained:
            raise RecipeError(f"open_clip:{arch}: text_cfg/embed_dim change the architecture and cannot be "
                              f"combined with pretrained={pretrained!r}; drop one of them.")
        cfg["text_cfg"] = {**cfg["text_cfg"], **(text_cfg or {})}
        cfg["embed_dim"] = embed_dim or cfg["embed_dim"]
    if from_assets:
        cfg["text_cfg"]["hf_model_pretrained"] = False  # weights come from the zoo checkpoint
    from open_clip.model import _build_text_tower  # the one builder open_clip uses for CLIP and CustomTextCLIP
    # open_clip calls transformers without trust_remote_code: refuse custom code instead of prompting
    with no_remote_code(f"open_clip:{arch}") if uses_transformers(cfg) else contextlib.nullcontext():
        text = _build_text_tower(cfg["embed_dim"], cfg["text_cfg"], quick_gelu=cfg.get("quick_gelu", False))
        if not from_assets and (pretrained or arch.startswith(("local-dir:", "hf-hub:"))):
            full = oc.create_model(arch, pretrained=pretrained)
            text.load_state_dict(text_state(full), strict=True)
        ctx = cfg["text_cfg"].get("context_length")
        tokenizer = oc.get_tokenizer(f"local-dir:{assets_dir}" if from_assets else arch, context_length=ctx)
    if gradient_checkpointing:
        text.set_grad_checkpointing(True)
    return OpenClipTextEncoder(text, tokenizer, cfg)
