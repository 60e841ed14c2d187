"""``hf:<repo or directory>``: transformers' CLIP, SigLIP, CLAP, X-CLIP and VideoMAE checkpoints as ContrastiveModels.

    zoo.load("hf:openai/clip-vit-base-patch32")         # Hub id (through the huggingface_hub cache)
    zoo.load("hf:google/siglip-base-patch16-224@<sha>")  # pinned to a revision
    zoo.load("hf:laion/clap-htsat-unfused")              # audio + text
    zoo.load("hf:/path/to/a/save_pretrained/dir")        # transformers' own local layout

The native model is loaded once with ``AutoModel.from_pretrained`` (strictly: any missing,
unexpected or mis-shaped key is a :class:`CheckpointError`), and its weights are copied into
towers ``hf_<family>_<side>`` with ``projection = "none"``: the native projections already map
to the shared space. ``logit_scale`` stays in log space (``model.scale()`` is its exp) and
SigLIP's ``logit_bias`` comes along. CLAP has two temperatures (``logit_scale_a`` for audio→text,
``logit_scale_t`` for text→audio, equal at initialisation); the zoo keeps ``logit_scale_a`` and
``model.source`` states both.

Video: X-CLIP (``microsoft/xclip-base-patch32``) gives a video tower (``get_video_features``: per-frame
CLIP vision, projection, multi-frame integration transformer) and a text tower (``get_text_features``).
X-CLIP's video-specific prompt generator (``prompts_*`` weights) conditions each text on the video it is
scored against, which no pair of independent towers can express: those weights are not loaded (the
source says so), and ``model.similarity`` is the cosine of the two feature sets, not ``XCLIPModel``'s
``logits_per_video``. VideoMAE (``MCG-NJU/videomae-base``…) loads as a one-tower video model (the mean
of the last hidden states, ``embed_dim`` = hidden size, no trained temperature), and its tower
``hf_videomae`` can join a recipe like any video encoder. Frames are sampled uniformly to the model's
``num_frames``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from zoo.checks import require
from zoo.errors import CheckpointError, UnknownNameError
from zoo.hub.remote_code import refuse_code
from zoo.model import ContrastiveModel, ModelConfig, TowerConfig

from ._weights import (
    cached_models,
    check_loading_info,
    copy_weights,
    hub_snapshot,
    local_path,
    max_scale_for,
    readme_license,
    rename,
    require_safetensors,
    scalar,
    split_revision,
)
from .hf_towers import ENCODER_NAMES, FAMILIES, UNPREFIXED, native_config, output_dim

CITATIONS = {
    "clip": "Radford et al. 2021, Learning Transferable Visual Models From Natural Language Supervision "
            "(ICML 2021, arXiv:2103.00020)",
    "siglip": "Zhai, Mustafa, Kolesnikov, Beyer 2023, Sigmoid Loss for Language Image Pre-Training "
              "(ICCV 2023, arXiv:2303.15343)",
    "clap": "Wu, Chen, Zhang, Hui, Berg-Kirkpatrick, Dubnov 2023, Large-scale Contrastive Language-Audio "
            "Pretraining with Feature Fusion and Keyword-to-Caption Augmentation (ICASSP 2023, arXiv:2211.06687)",
    "xclip": "Ni et al. 2022, Expanding Language-Image Pretrained Models for General Video Recognition "
             "(ECCV 2022, arXiv:2208.02816)",
    "videomae": "Tong, Song, Wang, Wang 2022, VideoMAE: Masked Autoencoders are Data-Efficient Learners for "
                "Self-Supervised Video Pre-Training (NeurIPS 2022, arXiv:2203.12602)",
}
# Well-known checkpoints (loadable with network access or once in the cache); cached ones are listed too.
KNOWN = ("openai/clip-vit-base-patch32", "openai/clip-vit-base-patch16", "openai/clip-vit-large-patch14",
         "openai/clip-vit-large-patch14-336", "google/siglip-base-patch16-224", "google/siglip-base-patch16-256",
         "google/siglip-large-patch16-256", "google/siglip-so400m-patch14-384", "laion/clap-htsat-unfused",
         "laion/clap-htsat-fused", "laion/larger_clap_general", "laion/larger_clap_music_and_speech",
         "microsoft/xclip-base-patch32", "microsoft/xclip-base-patch16", "MCG-NJU/videomae-base",
         "MCG-NJU/videomae-base-finetuned-kinetics")
SCALARS = {"clip": ("logit_scale",), "siglip": ("logit_scale", "logit_bias"), "clap": ("logit_scale_a", "logit_scale_t"),
           "xclip": ("logit_scale",), "videomae": ()}
# native weights no pair of independent towers can use, dropped by name (and said so in model.source)
NOT_LOADED = {"xclip": ("prompts_generator", "prompts_visual_layernorm", "prompts_visual_projection")}


def _config(name: str):
    """``(source, revision, config)`` for a Hub id (``@rev`` pins it) or a local directory."""
    source, revision = split_revision(name)
    if local_path(source) is not None:
        refuse_code(Path(source).expanduser(), f"hf:{name}", code_files=False)
    try:
        config = native_config(source, revision, None)
    except Exception as exc:
        raise CheckpointError(
            f"hf:{name}: cannot read its config.json ({type(exc).__name__}: {exc}). Give a Hub id (offline, "
            f"HF_HUB_OFFLINE=1, it must be in the huggingface_hub cache) or a transformers save_pretrained "
            f"directory.") from exc
    if config.model_type not in FAMILIES:
        raise UnknownNameError(
            "transformers dual-encoder type", config.model_type, list(FAMILIES),
            hint=f"hf:{name} is a {config.model_type!r} model; the hf: source wraps {', '.join(FAMILIES)}. "
                 f"For a single text encoder use a tower with encoder = 'hf:{name}' (zoo_text); for "
                 f"sentence-transformers models use st:<name>.")
    return source, revision, config


def _model_config(source: str, revision: str | None, config) -> ModelConfig:
    family = config.model_type
    towers = {m: TowerConfig(modality=m, encoder=ENCODER_NAMES[family, m], projection="none",
                             encoder_kwargs={"source": source, **({"revision": revision} if revision else {})})
              for m in FAMILIES[family]}
    dims = {m: output_dim(family, config, p) for m, p in FAMILIES[family].items()}
    if len(set(dims.values())) != 1:
        raise CheckpointError(f"hf:{source}: its towers embed to different sizes {dims}; they cannot share a space.")
    scale = math.log(getattr(config, "logit_scale_init_value", 1 / 0.07)) if family == "clap" else \
        float(getattr(config, "logit_scale_init_value", math.log(1 / 0.07) if not SCALARS[family] else math.log(10.0)))
    return ModelConfig(towers=towers, embed_dim=next(iter(dims.values())), logit_scale=scale,
                       logit_bias=-10.0 if family == "siglip" else None, max_logit_scale=max_scale_for(scale))


def resolve(name: str, *, pretrained: bool = True) -> ContrastiveModel:
    """``hf:<Hub id[@revision] | directory>`` → a ContrastiveModel (see the module docstring)."""
    source, revision, config = _config(name)
    native = _load_native(name, source, revision) if pretrained else None
    cfg = _model_config(source, revision, config)
    if native is not None and SCALARS[config.model_type]:  # the pretrained temperature (and bias) replace the init
        cfg.logit_scale = scalar(getattr(native, SCALARS[config.model_type][0]).detach())
        cfg.max_logit_scale = max_scale_for(cfg.logit_scale)
        if config.model_type == "siglip":
            cfg.logit_bias = scalar(native.logit_bias.detach())
    model = ContrastiveModel(cfg)
    if native is None:
        return model
    family = config.model_type
    state, unclaimed = rename(native.state_dict(), lambda k: _route(family, k))
    dropped = [k for k in unclaimed if k.split(".", 1)[0] in NOT_LOADED.get(family, ())]
    unclaimed = [k for k in unclaimed if k not in SCALARS[family] and k not in dropped]
    if unclaimed:
        raise CheckpointError(f"hf:{name}: weights {unclaimed[:8]} belong to no tower of the zoo model; the zoo "
                              f"does not drop weights silently.")
    state.update({"logit_scale": model.logit_scale.detach().clone()})
    if model.logit_bias is not None:
        state["logit_bias"] = model.logit_bias.detach().clone()
    copy_weights(model, state, f"hf:{name}")
    model.source = f"hf:{name} (transformers {type(native).__name__} from {source}" + \
        (f"@{revision}" if revision else "") + ")" + _clap_note(native) + \
        (f"; X-CLIP's video-conditioned text prompts ({len(dropped)} prompts_* tensors) not loaded: the towers give "
         f"get_video_features / get_text_features" if dropped else "")
    return model


def _load_native(name: str, source: str, revision: str | None):
    tf = require("transformers", "text", "the pretrained sources")
    if local_path(source) is not None:
        require_safetensors(Path(source).expanduser(), f"hf:{name}", (
            f"python -c \"from transformers import AutoModel; AutoModel.from_pretrained('{source}', trust_remote_code=False, "
            f"use_safetensors=False).save_pretrained('{source}')\" (adds model.safetensors beside it)."))
    try:
        native, info = tf.AutoModel.from_pretrained(source, trust_remote_code=False, revision=revision,
                                                    output_loading_info=True, ignore_mismatched_sizes=True,
                                                    use_safetensors=True)  # reported, then refused below
    except Exception as exc:
        raise CheckpointError(f"hf:{name}: cannot load the pretrained weights ({type(exc).__name__}: {exc}). "
                              f"Nothing falls back to random weights; use pretrained=False for the architecture "
                              f"only.") from exc
    check_loading_info(info, f"hf:{name}")
    return native.float().eval()


def _route(family: str, key: str) -> str | None:
    if family in UNPREFIXED:  # the native model is the (only) tower's module
        (modality, part), = FAMILIES[family].items()
        return f"towers.{modality}.encoder.{part.model_attr}.{key}"
    for modality, part in FAMILIES[family].items():
        prefixes = (part.model_attr, *([part.projection] if part.projection else []), *part.extra)
        if key.split(".", 1)[0] in prefixes:
            return f"towers.{modality}.encoder.{key}"
    return None


def _clap_note(native) -> str:
    if not hasattr(native, "logit_scale_t"):
        return ""
    a, t = scalar(native.logit_scale_a.detach()), scalar(native.logit_scale_t.detach())
    return f"; CLAP logit_scale_a={a:.4f} used as logit_scale, logit_scale_t={t:.4f} not used"


def list_names() -> list[str]:
    return sorted(set(KNOWN) | set(_cached()))


def _cached() -> list[str]:
    """Repos of the huggingface_hub cache whose config is a CLIP, SigLIP or CLAP one."""
    return cached_models(_is_family)


def _is_family(snapshot: Path) -> bool:
    import json
    try:
        return json.loads((snapshot / "config.json").read_text()).get("model_type") in FAMILIES
    except (OSError, ValueError, AttributeError):
        return False


def info(name: str) -> dict[str, Any]:
    source, revision, config = _config(name)
    family = config.model_type
    where = local_path(source)
    if where is None:
        try:
            where = hub_snapshot(source, revision, f"hf:{name}", allow_patterns=["README.md"])
        except CheckpointError:
            where = None
    return {"modalities": list(FAMILIES[family]), "embed_dim": _model_config(source, revision, config).embed_dim,
            "family": family, "transformers_class": config.architectures or family,
            "license": readme_license(where) or f"unknown (not in the config; see the model card of {source})",
            "citation": CITATIONS[family]}


def origin(name: str) -> dict[str, Any]:
    """Base model, licence and citation of ``hf:<name>`` (for model cards; no network)."""
    from ._weights import origin as _origin
    source, revision, config = _config(name)
    local = local_path(source)
    return _origin(None if local is not None else source, local, CITATIONS.get(config.model_type, ""))


def offline(name: str) -> bool:
    """Whether ``hf:<name>`` loads without a network (a directory, or its config in the Hub cache)."""
    from huggingface_hub import try_to_load_from_cache
    source, revision = split_revision(name)
    return local_path(source) is not None or isinstance(
        try_to_load_from_cache(source, "config.json", revision=revision), str)
