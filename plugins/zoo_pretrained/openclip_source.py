"""``open_clip:<arch>/<tag>``: every entry of ``open_clip.list_pretrained()`` as a ContrastiveModel.

    zoo.load("open_clip:ViT-B-32/laion2b_s34b_b79k")   # a pretrained tag (downloaded or from the cache)
    zoo.load("open_clip:ViT-B-32//path/to/weights.pt") # an architecture with a checkpoint file
    zoo.load("open_clip:/path/to/dir")                  # open_clip's local layout: open_clip_config.json + weights
    zoo.load("open_clip:hf-hub:timm/ViT-B-16-SigLIP")   # an open_clip repo on the Hub
    zoo.load("open_clip:ViT-B-32", pretrained=False)    # the architecture only

open_clip builds and loads the native model (``require_pretrained=True``: a failed download or a
checkpoint that does not fit is a :class:`CheckpointError`, never random weights); its weights
are copied into towers ``open_clip_visual`` / ``open_clip_text`` (projection ``"none"``), with
``logit_scale`` (log space) and, for SigLIP models, ``logit_bias``. Tags trained with QuickGELU
(``openai``…) get it even on an architecture name without ``-quickgelu`` (open_clip only warns).
CoCa models keep their contrastive towers; the captioning decoder (``text_decoder.*``) is not
part of a contrastive model and ``model.source`` says it was left out.
"""
from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

from zoo.checks import require
from zoo.errors import CheckpointError, UnknownNameError
from zoo.hub.remote_code import no_remote_code, uses_transformers
from zoo.model import ContrastiveModel, ModelConfig, TowerConfig

from ._weights import copy_weights, hub_snapshot, max_scale_for, readme_license, rename, scalar

OPENCLIP = "Ilharco et al. 2021, OpenCLIP (software, doi:10.5281/zenodo.5143773)"
CITATIONS = (  # (substring of "<arch>/<tag>", lowercase) → paper
    ("openai", ("Radford et al. 2021, Learning Transferable Visual Models From Natural Language Supervision "
                "(arXiv:2103.00020)")),
    ("laion", ("Schuhmann et al. 2022, LAION-5B (arXiv:2210.08402); Cherti et al. 2023, Reproducible scaling laws "
               "for contrastive language-image learning (arXiv:2212.07143)")),
    ("datacomp", ("Gadre et al. 2023, DataComp: In search of the next generation of multimodal datasets "
                  "(arXiv:2304.14108)")),
    ("commonpool", "Gadre et al. 2023, DataComp (arXiv:2304.14108)"),
    ("dfn", "Fang et al. 2023, Data Filtering Networks (arXiv:2309.17425)"),
    ("metaclip", "Xu et al. 2023, Demystifying CLIP Data (MetaCLIP, arXiv:2309.16671)"),
    ("siglip2", "Tschannen et al. 2025, SigLIP 2 (arXiv:2502.14786)"),
    ("siglip", "Zhai et al. 2023, Sigmoid Loss for Language Image Pre-Training (arXiv:2303.15343)"),
    ("coca", "Yu et al. 2022, CoCa: Contrastive Captioners are Image-Text Foundation Models (arXiv:2205.01917)"),
    ("eva0", "Sun et al. 2023, EVA-CLIP (arXiv:2303.15389)"),
    ("mobileclip", "Vasu et al. 2024, MobileCLIP (arXiv:2311.17049)"),
    ("clipa", "Li, Wang, Xie 2023, An Inverse Scaling Law for CLIP Training (CLIPA, arXiv:2305.07017)"),
    ("pe-core", "Bolya et al. 2025, Perception Encoder (arXiv:2504.13181)"),
    ("vitamin", "Chen et al. 2024, ViTamin (arXiv:2404.02132)"),
    ("nllb-clip", "Visheratin 2023, NLLB-CLIP (arXiv:2309.01859)"),
)


def _oc():
    return require("open_clip", "image", "the pretrained sources", package="open_clip_torch")


# -- names ------------------------------------------------------------------------------------------
def parse(name: str) -> dict[str, Any]:
    """``{"oc_name", "pretrained", "model_cfg", "preprocess_cfg", "tag_cfg"}`` for an ``open_clip:`` name."""
    oc = _oc()
    local = Path(name.removeprefix("local-dir:")).expanduser()
    if name.startswith("local-dir:") or local.is_dir():
        return _from_json(f"local-dir:{local.resolve()}", local / "open_clip_config.json", name)
    if name.startswith("hf-hub:"):
        repo = name.removeprefix("hf-hub:")
        folder = hub_snapshot(repo, None, f"open_clip:{name}", allow_patterns=["open_clip_config.json"])
        return _from_json(name, folder / "open_clip_config.json", name)
    arch, _, tag = name.partition("/")
    if arch not in oc.list_models():
        hint = "Give open_clip:<arch>/<checkpoint file> for a weights file." if local.is_file() else \
            "Names are open_clip:<arch>/<tag> (`zoo list models --pattern 'open_clip:*'`), open_clip:<dir> or " \
            "open_clip:hf-hub:<repo>."
        raise UnknownNameError("open_clip architecture", arch, oc.list_models(), hint=hint)
    cfg = oc.get_model_config(arch)
    out = {"oc_name": arch, "pretrained": tag or None, "model_cfg": cfg, "preprocess_cfg": {}, "tag_cfg": {}}
    if tag:
        tag_cfg = oc.get_pretrained_cfg(arch, tag)
        if tag_cfg:
            out["tag_cfg"] = tag_cfg
            out["preprocess_cfg"] = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode")
                                     if k in tag_cfg}
            if tag_cfg.get("quick_gelu") and not cfg.get("quick_gelu"):
                cfg["quick_gelu"] = True  # the weights were trained with QuickGELU
        elif not Path(tag).expanduser().is_file():
            raise UnknownNameError(f"pretrained tag of open_clip {arch}", tag,
                                   oc.list_pretrained_tags_by_model(arch),
                                   hint="Give a tag of open_clip.list_pretrained() or a checkpoint file path.")
    return out


def _from_json(oc_name: str, path: Path, name: str) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"open_clip:{name}: {path} does not exist; an open_clip directory holds "
                              f"open_clip_config.json and its weights (open_clip_model.safetensors).")
    try:
        data = json.loads(path.read_text("utf-8"))
        cfg = data["model_cfg"]
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"open_clip:{name}: {path} is not an open_clip config ({exc}).") from exc
    return {"oc_name": oc_name, "pretrained": None, "model_cfg": cfg, "preprocess_cfg": data.get("preprocess_cfg", {}),
            "tag_cfg": {}}


# -- loading ----------------------------------------------------------------------------------------
def _model_config(p: dict[str, Any]) -> ModelConfig:
    cfg = p["model_cfg"]
    scale = float(cfg.get("init_logit_scale", math.log(1 / 0.07)))
    towers = {
        "image": TowerConfig("image", "open_clip_visual", {"model_cfg": cfg, "preprocess_cfg": p["preprocess_cfg"]},
                             projection="none"),
        "text": TowerConfig("text", "open_clip_text", {"model_cfg": cfg, "tokenizer": p["oc_name"]}, projection="none"),
    }
    return ModelConfig(towers=towers, embed_dim=int(cfg["embed_dim"]), logit_scale=scale,
                       logit_bias=cfg.get("init_logit_bias"), max_logit_scale=max_scale_for(scale))


def resolve(name: str, *, pretrained: bool = True) -> ContrastiveModel:
    """``open_clip:<arch>/<tag> | <arch>/<file> | <dir> | hf-hub:<repo>`` (see the module docstring)."""
    p = parse(name)
    cfg = _model_config(p)
    if not pretrained:
        return ContrastiveModel(cfg)
    native = _load_native(name, p)
    cfg.logit_scale = scalar(native.logit_scale.detach())
    cfg.max_logit_scale = max_scale_for(cfg.logit_scale)
    if getattr(native, "logit_bias", None) is not None:
        cfg.logit_bias = scalar(native.logit_bias.detach())
    model = ContrastiveModel(cfg)
    custom = hasattr(native, "text")
    state, unclaimed = rename(native.state_dict(), lambda k: _route(k, custom))
    dropped = [k for k in unclaimed if k.startswith("text_decoder.")]
    rest = [k for k in unclaimed if k not in dropped and k not in ("logit_scale", "logit_bias")]
    if rest:
        raise CheckpointError(f"open_clip:{name}: weights {rest[:8]} belong to no tower; the zoo does not drop "
                              f"weights silently.")
    state["logit_scale"] = model.logit_scale.detach().clone()
    if model.logit_bias is not None:
        state["logit_bias"] = model.logit_bias.detach().clone()
    copy_weights(model, state, f"open_clip:{name}")
    model.source = f"open_clip:{name} (open_clip {type(native).__name__})" + \
        (f"; CoCa captioning decoder ({len(dropped)} tensors, text_decoder.*) not loaded" if dropped else "")
    return model


def _load_native(name: str, p: dict[str, Any]):
    oc = _oc()
    try:
        with no_remote_code(f"openclip:{name}") if uses_transformers(p["model_cfg"]) else contextlib.nullcontext():
            native = oc.create_model(p["oc_name"], pretrained=p["pretrained"], require_pretrained=True,
                                     force_quick_gelu=bool(p["model_cfg"].get("quick_gelu")))
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"open_clip:{name}: the pretrained weights could not be loaded ({type(exc).__name__}: {exc}). The zoo "
            f"does not fall back to random weights: check the tag, the file, the network or the cache "
            f"(HF_HUB_OFFLINE=1 needs the files cached), or pass pretrained=False for the architecture.") from exc
    return native.float().eval()


def _route(key: str, custom_text: bool) -> str | None:
    if key.startswith("visual."):
        return f"towers.image.encoder.{key}"
    if custom_text:
        return f"towers.text.encoder.{key}" if key.startswith("text.") else None
    if key in ("logit_scale", "logit_bias") or key.startswith("text_decoder."):
        return None
    return f"towers.text.encoder.text.{key}"  # CLIP keeps its text tower's keys at the top level


# -- listing and info -------------------------------------------------------------------------------
def list_names() -> list[str]:
    return [f"{arch}/{tag}" for arch, tag in _oc().list_pretrained()]


def citation(name: str) -> str:
    low = name.lower()
    found = []
    for pattern, cite in CITATIONS:
        if pattern in low and cite not in found and not (pattern == "siglip" and "siglip2" in low):
            found.append(cite)
    return "; ".join([*found, OPENCLIP])


def info(name: str) -> dict[str, Any]:
    p = parse(name)
    hub = p["tag_cfg"].get("hf_hub", "").strip("/")
    local = Path(p["oc_name"].removeprefix("local-dir:")) if p["oc_name"].startswith("local-dir:") else None
    where = f"https://huggingface.co/{hub}" if hub else "its source"
    return {"modalities": ["image", "text"], "embed_dim": int(p["model_cfg"]["embed_dim"]),
            "architecture": p["oc_name"], "pretrained": p["pretrained"],
            "quick_gelu": bool(p["model_cfg"].get("quick_gelu", False)), "weights_on_hub": hub or None,
            "license": readme_license(local) or f"unknown (open_clip does not record licenses; see {where})",
            "citation": citation(name)}


def origin(name: str) -> dict[str, Any]:
    """Base model, licence and citation of ``open_clip:<name>`` (for model cards; no network)."""
    from ._weights import origin as _origin
    p = parse(name)
    local = Path(p["oc_name"].removeprefix("local-dir:")) if p["oc_name"].startswith("local-dir:") else None
    repo = p["tag_cfg"].get("hf_hub", "").strip("/") or (name.removeprefix("hf-hub:") if name.startswith("hf-hub:")
                                                         else None)
    return _origin(repo, local, citation(name))


def offline(name: str) -> bool:
    """Whether ``open_clip:<arch>/<tag>`` loads without a network (its weights in the Hub or open_clip cache)."""
    from huggingface_hub import try_to_load_from_cache
    arch, _, tag = name.partition("/")
    if Path(name).expanduser().exists() or (tag and Path(tag).expanduser().is_file()):
        return True
    cfg = _oc().get_pretrained_cfg(arch, tag) if tag else {}
    hub = (cfg or {}).get("hf_hub", "")
    if hub:
        parts = hub.strip("/").split("/")
        repo, file = "/".join(parts[:2]), "/".join(parts[2:])
        names = [file] if file else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        return any(isinstance(try_to_load_from_cache(repo, f), str) for f in names)
    url = (cfg or {}).get("url", "")
    return bool(url) and (Path.home() / ".cache" / "clip" / Path(url).name).is_file()
