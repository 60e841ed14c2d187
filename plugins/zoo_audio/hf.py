"""``audio/hf:<name>``: wav2vec 2.0 / HuBERT / WavLM-style models from ``transformers``.

- ``hf:facebook/wav2vec2-base`` or ``hf:/path/to/dir``: a transformers checkpoint (a Hub id is
  read from the local cache when ``HF_HUB_OFFLINE=1``); ``pretrained=False`` keeps the
  architecture with random weights.
- ``hf:wav2vec2`` / ``hf:hubert`` with ``config={...}``: a random model of that type built with
  ``AutoConfig.for_model(type, **config)`` (tiny models for tests and experiments).

The waveform is normalised per clip over its valid samples when the checkpoint's feature
extractor says ``do_normalize`` (as ``Wav2Vec2FeatureExtractor`` does), padded with zeros, and
given an attention mask only where the checkpoint asks for one (layer-norm feature encoders;
group-norm ones such as wav2vec2-base expect zero padding without a mask). The embedding is
the mean of the last hidden states over each clip's valid frames; ``forward_levels`` gives the
same mean for every intermediate layer (``layer1`` …).

``save_assets`` writes the HF ``config.json`` and ``preprocessor_config.json`` with the zoo
checkpoint; a build given ``assets_dir=`` rebuilds the architecture from them, offline.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.errors import CheckpointError, RecipeError

from .frontend import frame_mask
from .io import SAMPLE_RATE, check_batch, require

PREPROCESSOR = "preprocessor_config.json"


def _build_model(name: str, config: dict | None, pretrained: bool, assets_dir: str | None):
    transformers = require("transformers")
    if config is not None:
        try:
            cfg = transformers.AutoConfig.for_model(name, **config)
        except ValueError as exc:
            raise RecipeError(f"audio hf:{name} with config=…: {name!r} must be a transformers model type such as "
                              f"'wav2vec2', 'hubert', 'wavlm' or 'data2vec-audio' ({exc}).") from exc
        return transformers.AutoModel.from_config(cfg, trust_remote_code=False)
    if assets_dir is not None and (Path(assets_dir) / "config.json").is_file():
        return transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(assets_dir, trust_remote_code=False),
                                                  trust_remote_code=False)
    try:
        if pretrained:
            return transformers.AutoModel.from_pretrained(name, trust_remote_code=False, use_safetensors=True)
        return transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(name, trust_remote_code=False),
                                                  trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load audio encoder hf:{name}: {exc}. Give a local directory or a Hub id "
                              f"in the cache (HF_HUB_OFFLINE=1 allows no download), or a random model: "
                              f"encoder 'hf:wav2vec2' with config={{...}}.") from exc


def _extractor_settings(name: str, config: dict | None, assets_dir: str | None, model) -> dict[str, bool]:
    """``do_normalize`` / ``return_attention_mask`` of the checkpoint's feature extractor."""
    settings = {"do_normalize": True, "return_attention_mask": getattr(model.config, "feat_extract_norm", "") == "layer"}
    sources = [assets_dir] if assets_dir else []
    if config is None:
        sources.append(name)
    for source in sources:
        saved = _read_preprocessor(source)
        if saved is not None:
            settings.update({k: bool(saved[k]) for k in settings if k in saved})
            break
    return settings


def _read_preprocessor(source: str) -> dict | None:
    local = Path(source) / PREPROCESSOR
    if local.is_file():
        return json.loads(local.read_text("utf-8"))
    if Path(source).exists():
        return None
    try:
        from huggingface_hub import hf_hub_download
        return json.loads(Path(hf_hub_download(source, PREPROCESSOR)).read_text("utf-8"))
    except Exception:  # noqa: BLE001 - no extractor file (or offline): keep the defaults
        return None


def normalize_waveform(wave: Tensor, lengths: Tensor) -> Tensor:
    """Zero mean, unit variance over each row's valid samples; padding stays 0. ``(B, T)``."""
    mask = frame_mask(lengths, wave.shape[-1]).to(wave.dtype)  # (B, T)
    n = lengths.clamp(min=1)[:, None].to(wave.dtype)
    mean = (wave * mask).sum(-1, keepdim=True) / n
    var = (((wave - mean) * mask) ** 2).sum(-1, keepdim=True) / n
    return (wave - mean) / torch.sqrt(var + 1e-7) * mask


class HFAudioEncoder(nn.Module):
    """Audio batch → ``(B, hidden_size)``: mean of the last hidden states over valid frames."""

    def __init__(self, name: str, config: dict | None = None, pretrained: bool = True, normalize: bool | None = None,
                 attention_mask: bool | None = None, assets_dir: str | None = None):
        super().__init__()
        self.model = _build_model(name, config, pretrained, assets_dir)
        if not hasattr(self.model.config, "conv_kernel"):
            raise RecipeError(f"audio hf:{name} is a {type(self.model).__name__}, not a wav2vec2/HuBERT-style model "
                              f"(a convolutional feature encoder over raw waveforms).")
        settings = _extractor_settings(name, config, assets_dir, self.model)
        self.normalize = settings["do_normalize"] if normalize is None else normalize
        self.use_attention_mask = settings["return_attention_mask"] if attention_mask is None else attention_mask
        self.name = name
        hidden, layers = self.model.config.hidden_size, self.model.config.num_hidden_layers
        self.output_dim = hidden
        self.level_dims = {f"layer{i}": hidden for i in range(1, layers)}
        self.min_samples = _receptive_field(self.model.config)

    def feature_lengths(self, lengths: Tensor) -> Tensor:
        """Valid frames after the convolutional feature encoder, ``(B,)``."""
        own = getattr(self.model, "_get_feat_extract_output_lengths", None)
        if own is not None:
            return own(lengths).long().clamp(min=1)
        out = lengths
        for k, s in zip(self.model.config.conv_kernel, self.model.config.conv_stride):
            out = (out - k).div(s, rounding_mode="floor") + 1
        return out.clamp(min=1)

    def run(self, batch: Any, all_layers: bool = False):
        wave, lengths = check_batch(batch, f"audio hf:{self.name}")
        if self.normalize:
            wave = normalize_waveform(wave, lengths)
        if wave.shape[-1] < self.min_samples:
            wave = nn.functional.pad(wave, (0, self.min_samples - wave.shape[-1]))
        mask = frame_mask(lengths, wave.shape[-1]).long() if self.use_attention_mask else None
        out = self.model(wave, attention_mask=mask, output_hidden_states=all_layers)
        return out, self.feature_lengths(lengths.clamp(min=self.min_samples))

    def forward(self, batch: Any) -> Tensor:
        out, frames = self.run(batch)
        return masked_mean(out.last_hidden_state, frames)  # (B, H)

    def forward_levels(self, batch: Any) -> dict[str, Tensor]:
        out, frames = self.run(batch, all_layers=True)
        levels = {lv: masked_mean(out.hidden_states[int(lv[5:])], frames) for lv in self.level_dims}
        levels["final"] = masked_mean(out.last_hidden_state, frames)
        return levels

    def preprocess_config(self) -> dict[str, Any]:
        return {"sample_rate": SAMPLE_RATE, "normalize": self.normalize, "attention_mask": self.use_attention_mask,
                "source": self.name}

    def save_assets(self, directory) -> None:
        """The HF config and feature-extractor settings, so the tower rebuilds offline."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(directory)
        extractor = {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "padding_side": "right",
                     "padding_value": 0.0, "sampling_rate": SAMPLE_RATE, "do_normalize": self.normalize,
                     "return_attention_mask": self.use_attention_mask}
        (directory / PREPROCESSOR).write_text(json.dumps(extractor, indent=2), "utf-8")


def masked_mean(hidden: Tensor, frames: Tensor) -> Tensor:
    """``(B, F, H)`` → ``(B, H)`` mean over the first ``frames[b]`` frames of each row."""
    mask = frame_mask(frames, hidden.shape[1]).to(hidden.dtype)[:, :, None]  # (B, F, 1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def _receptive_field(config) -> int:
    """Samples the convolutional feature encoder needs for one output frame."""
    field = 1
    for k, s in reversed(list(zip(config.conv_kernel, config.conv_stride))):
        field = (field - 1) * s + k
    return field
