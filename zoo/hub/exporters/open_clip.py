"""``open_clip``: an image–text model built from open_clip towers as an open_clip ``local-dir``.

Layout written (what ``open_clip.create_model_and_transforms("local-dir:<dir>")`` reads)::

    open_clip_config.json         {"model_cfg": {embed_dim, vision_cfg, text_cfg, quick_gelu, …}, "preprocess_cfg"}
    open_clip_model.safetensors   visual.*, the text keys (top level for CLIP, text.* for CustomTextCLIP), logit_scale
    tokenizer files               only for Hugging Face tokenizers (text_cfg.hf_tokenizer_name)

Each tower's encoder answers ``open_clip_parts()`` with its open_clip module (``visual`` or the
text tower), its ``vision_cfg`` / ``text_cfg`` and ``quick_gelu``. The zoo's linear projection is
folded into open_clip's own (``proj`` / ``text_projection``: ``P' = P Wᵀ``), so the exported
model's normalised embeddings equal ``model.encode``'s. An MLP projection, or a linear one on a
tower without an open_clip projection, has no place in open_clip and is an error.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.files import atomic_write_text
from zoo.hub.export import ExportError, exporter, parts, pick_tower, projection_layers

FMT = "open_clip"


@exporter(FMT)
def export_open_clip(model, directory: Path, *, image: str | None = None, text: str | None = None) -> Path:
    """Write the image tower ``image`` and the text tower ``text`` (default: the only one of each)."""
    keys = {"image": pick_tower(model, "image", image, FMT), "text": pick_tower(model, "text", text, FMT)}
    vis, txt = (parts(model, keys[m], "open_clip_parts", FMT) for m in ("image", "text"))
    if bool(vis["quick_gelu"]) != bool(txt["quick_gelu"]):
        raise ExportError(f"the image tower uses quick_gelu={vis['quick_gelu']} and the text tower "
                          f"quick_gelu={txt['quick_gelu']}; one open_clip model has one setting for both.")
    visual = _folded(model, keys["image"], vis["module"], "proj")
    text_mod = _folded(model, keys["text"], txt["module"], "text_projection")
    custom = type(text_mod).__name__ != "TextTransformer" or "hf_model_name" in txt["text_cfg"]
    model_cfg: dict[str, Any] = {"embed_dim": model.embed_dim, "vision_cfg": copy.deepcopy(vis["vision_cfg"]),
                                 "text_cfg": copy.deepcopy(txt["text_cfg"]), "quick_gelu": bool(vis["quick_gelu"]),
                                 "init_logit_scale": model.logit_scale.item()}
    if custom:
        model_cfg["custom_text"] = True
    if "timm_model_name" in model_cfg["vision_cfg"]:
        model_cfg["vision_cfg"]["timm_model_pretrained"] = False  # the weights are in the export
    if "hf_model_name" in model_cfg["text_cfg"]:
        model_cfg["text_cfg"]["hf_model_pretrained"] = False
    if model.logit_bias is not None:
        model_cfg["init_logit_bias"] = model.logit_bias.item()
    state = {f"visual.{k}": v for k, v in visual.state_dict().items()}
    state.update({(f"text.{k}" if custom else k): v for k, v in text_mod.state_dict().items()})
    state["logit_scale"] = model.logit_scale.detach().reshape(())
    if model.logit_bias is not None:
        state["logit_bias"] = model.logit_bias.detach().reshape(())
    state = {k: v.detach().float().cpu().contiguous() for k, v in state.items()}
    _check_loads(model_cfg, state)

    directory.mkdir(parents=True, exist_ok=True)
    from zoo.hub.format import save_weights
    save_weights(state, directory / "open_clip_model.safetensors")
    tok = txt.get("tokenizer")
    saver = getattr(tok, "save_pretrained", None) or getattr(getattr(tok, "tokenizer", None), "save_pretrained", None)
    if "hf_tokenizer_name" in model_cfg["text_cfg"] and saver is not None:
        saver(str(directory))
    config = {"model_cfg": model_cfg, "preprocess_cfg": vis["preprocess_cfg"]}
    atomic_write_text(directory / "open_clip_config.json", json.dumps(config, indent=2))
    return directory


def _folded(model, key: str, module: nn.Module, attr: str) -> nn.Module:
    """A copy of the open_clip ``module`` with the zoo tower's projection folded into ``module.<attr>``."""
    layers = projection_layers(model, key)
    if not layers:
        return module
    if len(layers) > 1:
        raise ExportError(f"tower {key!r} has an MLP projection; open_clip towers end in one linear projection. "
                          f"Train with projection = 'linear' or 'none' to export to open_clip.")
    w = layers[0][0].weight.detach()  # (D, e)
    own = getattr(module, attr, None)
    if own is None:
        raise ExportError(f"tower {key!r}: its open_clip module ({type(module).__name__}) has no {attr} to fold the "
                          f"zoo's linear projection into; train it with projection = 'none' to export to open_clip.")
    out = copy.deepcopy(module)
    with torch.no_grad():
        if isinstance(own, nn.Linear):  # y = W (A x + b)
            lin = nn.Linear(own.in_features, w.shape[0], bias=own.bias is not None)
            lin.weight.copy_(w @ own.weight)
            if own.bias is not None:
                lin.bias.copy_(w @ own.bias)
            setattr(out, attr, lin.to(own.weight.dtype))
        else:  # x @ P, P: (width, e) → (width, D)
            setattr(out, attr, nn.Parameter((own @ w.T.to(own.dtype)).contiguous()))
    return out


def _check_loads(model_cfg: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
    """Build the open_clip model the config describes and load ``state`` strictly (nothing written yet)."""
    from open_clip.model import CLIP, CustomTextCLIP
    cfg = {k: v for k, v in copy.deepcopy(model_cfg).items() if k != "custom_text"}
    cls = CustomTextCLIP if model_cfg.get("custom_text") else CLIP
    try:
        native = cls(**cfg)
        native.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ExportError(f"the towers do not make one open_clip model: {exc}") from exc
