"""The ``audio`` modality (``pip install zoo[audio]``).

- raw: float32 mono waveform ``(T,)`` at 16 kHz (:data:`SAMPLE_RATE`); ``load`` reads paths and
  bytes with soundfile, resamples ``(waveform, sample_rate)`` tuples with torchaudio and mixes
  arrays to mono; batch: ``{"waveform": (B, T_max), "lengths": (B,)}``.
- encoders: ``cnn`` (PANN/CLAP-style CNN over log-mel), ``ast`` (Audio Spectrogram
  Transformer from transformers' ``ASTConfig``), ``hf:<name>`` (wav2vec2 / HuBERT family).
- augmentations: ``gain``, ``noise``, ``time_shift``, ``random_crop``, ``time_mask``, ``freq_mask``.

Heavy dependencies (soundfile, torchaudio, transformers) are imported when first used.
"""
from __future__ import annotations

from zoo import hookimpl

from .ast import ASTEncoder
from .augment import AUGMENTATIONS
from .cnn import CNNEncoder
from .hf import HFAudioEncoder
from .io import SAMPLE_RATE, collate_audio, is_single_audio, load_audio, render_audio  # noqa: F401 - public API


@hookimpl
def zoo_register_modalities(register):
    register("audio", load=load_audio, collate=collate_audio, extra="audio", is_single=is_single_audio, length=len,
             render=render_audio,
             extensions=(".wav", ".flac", ".ogg", ".mp3"),
             description=f"mono waveforms at {SAMPLE_RATE} Hz; batch {{waveform (B, T), lengths (B,)}}")


@hookimpl
def zoo_register_encoders(register):
    register("audio", "cnn", CNNEncoder, description="PANN/CLAP-style CNN over log-mel; levels block1…")
    register("audio", "ast", ASTEncoder, description="Audio Spectrogram Transformer (transformers ASTConfig) over log-mel")
    register("audio", "hf", HFAudioEncoder, variant="hub id | dir | type",
             description="wav2vec2/HuBERT: hf:<hub id or dir>, or hf:<type> with config={...}")


@hookimpl
def zoo_register_augmentations(register):
    for name, (make, description) in AUGMENTATIONS.items():
        register("audio", name, make, description=description)
