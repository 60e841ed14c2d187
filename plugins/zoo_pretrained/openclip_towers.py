"""The two towers of any open_clip model, built from its full model config (no architecture name).

    enc = zoo.create_encoder("image", "open_clip_visual", model_cfg=cfg, preprocess_cfg={"mean": …})
    enc = zoo.create_encoder("text", "open_clip_text", model_cfg=cfg, tokenizer="ViT-B-32")

``model_cfg`` is open_clip's model config as ``open_clip.get_model_config`` or an
``open_clip_config.json`` gives it (``embed_dim``, ``vision_cfg``, ``text_cfg``, ``quick_gelu``…),
so a tower rebuilds from the zoo checkpoint's config.json alone, whatever the checkpoint's
origin (a built-in architecture, a local directory, an open_clip Hub repo). The towers are
open_clip's own modules (``_build_vision_tower`` / ``_build_text_tower``); their state-dict
keys are open_clip's (``visual.*``; ``text.*`` holds the text keys CLIP keeps at the top level).
Backbones from timm or transformers inside an open_clip config are built without their own
pretrained weights: the weights come from the checkpoint.
"""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from zoo.checks import require
from zoo.errors import ShapeError
from zoo.hub.remote_code import no_remote_code, uses_transformers

CONFIG_FILE = "open_clip_config.json"


def _no_backbone_download(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    if "timm_model_name" in cfg.get("vision_cfg", {}):
        cfg["vision_cfg"]["timm_model_pretrained"] = False
    if "hf_model_name" in cfg.get("text_cfg", {}):
        cfg["text_cfg"]["hf_model_pretrained"] = False
    return cfg


def image_preprocess_cfg(model_cfg: dict[str, Any], preprocess_cfg: dict[str, Any] | None) -> dict[str, Any]:
    """open_clip's evaluation preprocessing: its defaults, overlaid with the checkpoint's."""
    require("open_clip", "image", "the pretrained sources", package="open_clip_torch")
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict
    size = model_cfg.get("vision_cfg", {}).get("image_size", 224)
    return merge_preprocess_dict(PreprocessCfg(size=size), preprocess_cfg or {})


class OpenClipVisual(nn.Module):
    """open_clip's ``visual`` (ViT, ModifiedResNet, timm trunk…): ``(B, 3, H, W)`` → ``(B, embed_dim)``."""

    def __init__(self, model_cfg: dict[str, Any], preprocess_cfg: dict[str, Any] | None = None):
        super().__init__()
        require("open_clip", "image", "the pretrained sources", package="open_clip_torch")
        from open_clip.model import _build_vision_tower

        from zoo_image.preprocess import ImagePreprocess
        cfg = _no_backbone_download(model_cfg)
        self.visual = _build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"], quick_gelu=cfg.get("quick_gelu", False))
        self.output_dim = int(cfg["embed_dim"])
        self.model_cfg = cfg
        pp = image_preprocess_cfg(model_cfg, preprocess_cfg)
        size = pp["size"]
        self.preprocessor = ImagePreprocess(
            image_size=(size, size) if isinstance(size, int) else tuple(size), channels=3, mean=pp["mean"],
            std=pp["std"], interpolation=pp["interpolation"], resize_mode=pp["resize_mode"])

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ShapeError(f"open_clip_visual: expected a batch (B, 3, H, W), got {tuple(x.shape)}; use preprocess.")
        out = self.visual(x)
        return out[0] if isinstance(out, tuple) else out  # CoCa towers also return tokens; (B, embed_dim)

    def preprocess(self, raws: list[Any]) -> Tensor:
        return self.preprocessor(raws)  # (B, 3, H, W)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.set_grad_checkpointing(enable)

    def preprocess_config(self) -> dict[str, Any]:
        return self.preprocessor.to_dict()

    def open_clip_parts(self) -> dict[str, Any]:
        """This tower for ``model.export("open_clip", dir)``: open_clip's visual module, config, preprocessing."""
        from zoo_image.open_clip_encoder import open_clip_preprocess
        return {"module": self.visual, "vision_cfg": self.model_cfg["vision_cfg"],
                "quick_gelu": bool(self.model_cfg.get("quick_gelu", False)),
                "preprocess_cfg": open_clip_preprocess(self.preprocessor)}


def build_openclip_visual(model_cfg: dict[str, Any], preprocess_cfg: dict[str, Any] | None = None) -> OpenClipVisual:
    """The vision tower of an open_clip model config (``model_cfg``) with its preprocessing."""
    return OpenClipVisual(model_cfg, preprocess_cfg)


def _text_encoder_class():
    from zoo_text.openclip import OpenClipTextEncoder

    class OpenClipText(OpenClipTextEncoder):
        """zoo_text's open_clip text tower, also for CoCa (whose tower returns ``(pooled, tokens)``)."""

        def forward(self, tokens: Tensor) -> Tensor:
            if tokens.dim() != 2 or tokens.shape[1] != self.context_length:
                raise ShapeError(f"open_clip_text: expected token ids (B, {self.context_length}), got "
                                 f"{tuple(tokens.shape)}; use preprocess(list_of_strings).")
            out = self.text(tokens)
            return out[0] if isinstance(out, tuple) else out  # (B, output_dim)

        def set_grad_checkpointing(self, enable: bool = True) -> None:
            self.text.set_grad_checkpointing(enable)

    return OpenClipText


def build_openclip_text(model_cfg: dict[str, Any], tokenizer: str = "", assets_dir: str | None = None):
    """The text tower of an open_clip model config, with the tokenizer open_clip picks for ``tokenizer``
    (an architecture name, ``local-dir:<dir>`` or ``hf-hub:<repo>``); rebuilt from ``assets_dir`` offline."""
    oc = require("open_clip", "text", "the pretrained sources", package="open_clip_torch")
    from open_clip.model import _build_text_tower
    cfg = _no_backbone_download(model_cfg)
    from_assets = assets_dir is not None and (Path(assets_dir) / CONFIG_FILE).is_file()
    context = cfg["text_cfg"].get("context_length")
    # open_clip calls transformers without trust_remote_code: refuse instead of prompting
    with no_remote_code("openclip_text") if uses_transformers(cfg) else contextlib.nullcontext():
        text = _build_text_tower(cfg["embed_dim"], cfg["text_cfg"], quick_gelu=cfg.get("quick_gelu", False))
        tok = oc.get_tokenizer(f"local-dir:{assets_dir}" if from_assets else tokenizer, context_length=context)
    return _text_encoder_class()(text, tok, copy.deepcopy(model_cfg))
