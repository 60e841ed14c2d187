"""Towers of transformers' dual encoders (CLIP, SigLIP, CLAP, X-CLIP) and of VideoMAE as zoo encoders.

Each encoder holds one side of the native model under the native attribute names
(``vision_model`` + ``visual_projection`` for a CLIP image tower, ``audio_model`` +
``audio_projection`` for CLAP…), so a state-dict key of ``CLIPModel`` maps to
``towers.<tower>.encoder.<same key>``. Its ``preprocess`` is the native processor::

    enc = zoo.create_encoder("image", "hf_clip_vision", source="openai/clip-vit-base-patch32")
    z = enc(enc.preprocess(images))        # (B, projection_dim), as CLIPModel.get_image_features

The architecture comes from the native ``config.json`` of ``source`` (a Hub id, read through the
huggingface_hub cache, or a directory) or, when rebuilt from a zoo checkpoint, from the tower's
``assets/`` folder (``save_assets`` writes the config and the processor files there); the
weights are random until loaded (``zoo.load("hf:…")`` copies the native ones in).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.checks import require
from zoo.errors import CheckpointError, RecipeError, ShapeError, UnknownNameError

from ._weights import set_checkpointing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One side of a native dual encoder."""

    modality: str
    sub_config: str | None   # attribute of the full config (vision_config…); None: the whole config (VideoMAE)
    model_attr: str          # attribute of the full model, hence the state-dict prefix
    model_class: str         # transformers class of that side
    projection: str | None   # attribute of the projection after pooling (None: SigLIP's head is inside)
    extra: tuple[str, ...] = ()  # further native modules of this side (X-CLIP's video side: "mit")


FAMILIES: dict[str, dict[str, Part]] = {
    "clip": {"image": Part("image", "vision_config", "vision_model", "CLIPVisionModel", "visual_projection"),
             "text": Part("text", "text_config", "text_model", "CLIPTextModel", "text_projection")},
    "siglip": {"image": Part("image", "vision_config", "vision_model", "SiglipVisionModel", None),
               "text": Part("text", "text_config", "text_model", "SiglipTextModel", None)},
    "clap": {"audio": Part("audio", "audio_config", "audio_model", "ClapAudioModel", "audio_projection"),
             "text": Part("text", "text_config", "text_model", "ClapTextModel", "text_projection")},
    # X-CLIP: frames → CLIP vision → projection → multi-frame integration transformer ("mit") = get_video_features
    "xclip": {"video": Part("video", "vision_config", "vision_model", "XCLIPVisionModel", "visual_projection", ("mit",)),
              "text": Part("text", "text_config", "text_model", "XCLIPTextModel", "text_projection")},
    # VideoMAE: a video encoder alone (VideoMAEModel, whose keys have no prefix); mean of the last hidden states
    "videomae": {"video": Part("video", None, "videomae", "VideoMAEModel", None)},
}
UNPREFIXED = ("videomae",)   # families whose native model is the tower itself (state-dict keys without a prefix)
ENCODER_NAMES = {("clip", "image"): "hf_clip_vision", ("clip", "text"): "hf_clip_text",
                 ("siglip", "image"): "hf_siglip_vision", ("siglip", "text"): "hf_siglip_text",
                 ("clap", "audio"): "hf_clap_audio", ("clap", "text"): "hf_clap_text",
                 ("xclip", "video"): "hf_xclip_video", ("xclip", "text"): "hf_xclip_text",
                 ("videomae", "video"): "hf_videomae"}


def native_config(source: str | None, revision: str | None, assets_dir: str | None):
    """The full transformers config (``CLIPConfig``…) from the assets, a directory or the Hub cache."""
    tf = require("transformers", "text", "the pretrained sources")
    if assets_dir is not None and (Path(assets_dir) / "config.json").is_file():
        return tf.AutoConfig.from_pretrained(assets_dir, trust_remote_code=False)
    if source is None:
        raise RecipeError("hf tower: give source=<Hub id or directory of a transformers checkpoint>.")
    return tf.AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=False)


VOCAB_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
# the files each kind of processor reads, named in the error when they are missing
PROCESSOR_FILES = {"text": "the tokenizer files (tokenizer.json, or tokenizer_config.json with vocab.json + merges.txt "
                           "or the sentencepiece model)",
                   "image": "preprocessor_config.json", "audio": "preprocessor_config.json",
                   "video": "preprocessor_config.json"}


def default_processor(family: str, kind: str, config):
    """The family's default image processor / feature extractor sized from the model config, for a folder saved
    without processor files (``model.save_pretrained`` alone); ``None`` where there is no such default (text)."""
    tf = require("transformers", "text", "the pretrained sources")
    vision = getattr(config, "vision_config", config)
    size = int(getattr(vision, "image_size", 224))
    if kind == "image" and family == "clip":
        return tf.CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    if kind == "image" and family == "siglip":
        return tf.SiglipImageProcessor(size={"height": size, "width": size})
    if kind == "audio" and family == "clap":  # clips no longer than HTSAT's input (10 s for the released models)
        audio = config.audio_config
        frames = audio.spec_size * (audio.spec_size // audio.num_mel_bins)  # the time frames the encoder takes
        fe = tf.ClapFeatureExtractor(feature_size=audio.num_mel_bins)
        seconds = max(1, min(10, int((frames - 1) * fe.hop_length / fe.sampling_rate)))
        return tf.ClapFeatureExtractor(feature_size=audio.num_mel_bins, max_length_s=seconds,
                                       truncation="fusion" if audio.enable_fusion else "rand_trunc")
    if kind == "video":
        return tf.VideoMAEImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return None


def load_processor(kind: str, source: str, revision: str | None = None, family: str | None = None, config=None):
    """The native tokenizer / image processor / feature extractor of a checkpoint. A folder without them gets
    the family's default processor (image, audio, video) or a :class:`CheckpointError` naming the file (text)."""
    tf = require("transformers", "text", "the pretrained sources")
    cls = {"text": tf.AutoTokenizer, "image": tf.AutoImageProcessor, "audio": tf.AutoFeatureExtractor,
           "video": tf.AutoImageProcessor}[kind]
    try:
        processor = cls.from_pretrained(source, revision=revision, trust_remote_code=False)
        if kind == "text" and (len(processor) < 10 or Path(source).is_dir() and not any(
                (Path(source) / f).is_file() for f in VOCAB_FILES)):  # transformers builds an empty vocabulary
            raise CheckpointError(f"no vocabulary file ({', '.join(VOCAB_FILES)}) in {source}")
        return processor
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError, TypeError… depending on what is missing
        fallback = default_processor(family, kind, config) if family and config is not None else None
        if fallback is None:
            raise CheckpointError(
                f"hf: {source} has no {kind} processor: {PROCESSOR_FILES[kind]} not found or unreadable "
                f"({type(exc).__name__}: {str(exc)[:200]}). Save it next to the weights, e.g. "
                f"AutoProcessor.from_pretrained(<the original repo>, trust_remote_code=False)"
                f".save_pretrained({str(source)!r}).") from exc
        log.warning("hf: %s has no %s (%s); using %s's default %s sized from config.json.", source,
                    PROCESSOR_FILES[kind], type(exc).__name__, family.upper(), type(fallback).__name__)
        return fallback


def _extra(name: str, config) -> nn.Module:
    """X-CLIP's multi-frame integration transformer, configured as ``XCLIPModel`` configures it."""
    import copy

    from transformers.models.x_clip.modeling_x_clip import XCLIPMultiframeIntegrationTransformer
    vision = config.vision_config
    mit = copy.copy(vision)
    mit.hidden_size, mit.intermediate_size = vision.mit_hidden_size, vision.mit_intermediate_size
    mit.num_hidden_layers, mit.num_attention_heads = vision.mit_num_hidden_layers, vision.mit_num_attention_heads
    return XCLIPMultiframeIntegrationTransformer(mit)


def _projection(family: str, config, sub) -> nn.Module | None:
    if family in ("clip", "xclip"):
        return nn.Linear(sub.hidden_size, config.projection_dim, bias=False)
    if family == "clap":
        from transformers.models.clap.modeling_clap import ClapProjectionLayer
        return ClapProjectionLayer(sub)
    return None


def output_dim(family: str, config, part: Part) -> int:
    sub = getattr(config, part.sub_config) if part.sub_config else config
    if family in ("clip", "clap", "xclip"):
        return int(config.projection_dim)
    return int(getattr(sub, "projection_size", None) or sub.hidden_size)  # SigLIP: the head's width


class HFDualTower(nn.Module):
    """One side of a CLIP / SigLIP / CLAP model: native batch → ``(B, output_dim)`` (not normalised)."""

    def __init__(self, family: str, modality: str, config, processor: Any, *, max_length: int | None = None):
        super().__init__()
        if family not in FAMILIES or modality not in FAMILIES[family]:
            raise UnknownNameError(f"{family} tower", modality, list(FAMILIES.get(family, {})))
        self.family, self.modality, self.config, self.processor = family, modality, config, processor
        self.part = part = FAMILIES[family][modality]
        tf = require("transformers", "text", "the pretrained sources")
        sub = getattr(config, part.sub_config) if part.sub_config else config
        # the constructor the native dual encoder itself uses for each side (attention implementation included)
        setattr(self, part.model_attr, getattr(tf, part.model_class)._from_config(sub))
        if part.projection is not None:
            setattr(self, part.projection, _projection(family, config, sub))
        for name in part.extra:
            setattr(self, name, _extra(name, config))
        self.num_frames = int(getattr(sub, "num_frames", 0) or 0) or None  # video: frames the model takes
        self.output_dim = output_dim(family, config, part)
        self.max_length = max_length or (int(sub.max_position_embeddings) if modality == "text" else None)
        if family == "clap" and modality == "text":
            self.max_length = min(self.max_length, int(getattr(processor, "model_max_length", 512)))

    # -- preprocessing: the native processor, fed the zoo's raw forms ---------------------------------
    def preprocess(self, raws: list[Any]) -> Any:
        return getattr(self, f"_preprocess_{self.modality}")(raws)

    def _preprocess_text(self, raws: list[Any]) -> dict[str, Tensor]:
        padding = "max_length" if self.family == "siglip" else True  # SigLIP was trained on max-length padding
        enc = self.processor([str(r) for r in raws], padding=padding, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return dict(enc.items())  # {input_ids: (B, L), [attention_mask: (B, L)]}

    def _preprocess_image(self, raws: list[Tensor]) -> Tensor:
        images = [r.expand(3, -1, -1) if r.shape[0] == 1 else r for r in raws]  # grey → RGB, (3, H, W) in [0, 1]
        out = self.processor(images=images, do_rescale=False, input_data_format="channels_first", return_tensors="pt")
        return out["pixel_values"]  # (B, 3, H, W)

    def _preprocess_audio(self, raws: list[Tensor]) -> dict[str, Tensor]:
        from zoo_audio import SAMPLE_RATE
        sr = int(self.processor.sampling_rate)
        waves = [resample(r, SAMPLE_RATE, sr).numpy() for r in raws]  # CLAP listens at 48 kHz
        out = self.processor(waves, sampling_rate=sr, return_tensors="pt")
        return {k: out[k] for k in ("input_features", "is_longer") if k in out}

    def _preprocess_video(self, raws: list[Tensor]) -> Tensor:
        from zoo_video.io import frame_indices
        videos = []
        for r in raws:  # (T, C, H, W) in [0, 1]
            r = r[frame_indices(r.shape[0], self.num_frames)] if self.num_frames else r  # the model's frame count
            videos.append(list(r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r))  # grey → RGB frames (3, H, W)
        call = getattr(self.processor, "preprocess", self.processor)  # VideoMAEImageProcessor: preprocess(videos)
        out = call(videos, do_rescale=False, input_data_format="channels_first", return_tensors="pt")
        return out["pixel_values"]  # (B, T, 3, H, W)

    def preprocess_config(self) -> dict[str, Any]:
        return {"family": self.family, "processor": type(self.processor).__name__, "max_length": self.max_length,
                **({"num_frames": self.num_frames} if self.modality == "video" else {})}

    # -- forward: the native get_*_features without the final normalisation ----------------------------
    def forward(self, batch: Any) -> Tensor:
        model = getattr(self, self.part.model_attr)
        if self.modality == "video":
            if not isinstance(batch, Tensor) or batch.dim() != 5:
                raise ShapeError(f"{self.family} video tower: expected pixel_values (B, T, 3, H, W), got "
                                 f"{_describe(batch)}; use preprocess(videos).")
            if self.family == "videomae":
                return model(pixel_values=batch).last_hidden_state.mean(dim=1)  # (B, hidden)
            b, t = batch.shape[:2]
            frames = self.visual_projection(model(pixel_values=batch.flatten(0, 1)).pooler_output)  # (B·T, P)
            return self.mit(frames.view(b, t, -1)).pooler_output  # (B, P), as XCLIPModel.get_video_features
        if self.modality == "image":
            if not isinstance(batch, Tensor) or batch.dim() != 4:
                raise ShapeError(f"{self.family} image tower: expected pixel_values (B, 3, H, W), got "
                                 f"{_describe(batch)}; use preprocess(images).")
            pooled = model(pixel_values=batch).pooler_output
        else:
            key = "input_features" if self.modality == "audio" else "input_ids"
            if not isinstance(batch, dict) or key not in batch:
                raise ShapeError(f"{self.family} {self.modality} tower: expected the dict its preprocess returns "
                                 f"(with {key!r}), got {_describe(batch)}.")
            pooled = model(**batch).pooler_output
        proj = getattr(self, self.part.projection) if self.part.projection else None
        return proj(pooled) if proj is not None else pooled  # (B, output_dim)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations in backward (``run.grad_checkpointing``), non-reentrant."""
        set_checkpointing(getattr(self, self.part.model_attr), enable)

    # -- checkpoint assets ------------------------------------------------------------------------------
    def save_assets(self, directory: str | Path) -> None:
        """The full native config and the processor's files: enough to rebuild offline."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save_pretrained(directory)
        self.processor.save_pretrained(directory)

    def load_assets(self, directory: str | Path) -> None:
        self.processor = load_processor(self.modality, str(directory))


def resample(wave: Tensor, sr_from: int, sr_to: int) -> Tensor:
    if sr_from == sr_to:
        return wave
    functional = require("torchaudio.functional", "audio", "the pretrained sources")
    return functional.resample(wave.to(torch.float32), sr_from, sr_to)


def _describe(batch: Any) -> str:
    return f"shape {tuple(batch.shape)}" if isinstance(batch, Tensor) else type(batch).__name__


def build(family: str, modality: str, source: str | None = None, revision: str | None = None,
          max_length: int | None = None, assets_dir: str | None = None) -> HFDualTower:
    config = native_config(source, revision, assets_dir)
    if config.model_type != family:
        raise RecipeError(f"hf_{family} tower: {source or assets_dir} holds a {config.model_type!r} model, not "
                          f"{family!r}; use the tower of its own family (zoo list encoders).")
    from_assets = assets_dir is not None and (Path(assets_dir) / "config.json").is_file()
    processor = load_processor(modality, assets_dir if from_assets else source, None if from_assets else revision,
                               family, config)
    return HFDualTower(family, modality, config, processor, max_length=max_length)


def _builder(family: str, modality: str):
    def build_tower(source: str | None = None, revision: str | None = None, max_length: int | None = None,
                    assets_dir: str | None = None) -> HFDualTower:
        return build(family, modality, source, revision, max_length, assets_dir)
    build_tower.__doc__ = (f"The {modality} tower of a transformers {family.upper()} checkpoint: "
                           f"source=<Hub id or directory>, revision=<branch, tag or commit>.")
    return build_tower


BUILDERS = {name: (modality, _builder(family, modality)) for (family, modality), name in ENCODER_NAMES.items()}
