"""Reading audio into the raw form: a float32 mono waveform ``(T,)`` at 16 kHz.

``load_audio`` accepts a path (read with ``soundfile``), encoded bytes, a ``(waveform,
sample_rate)`` tuple (resampled with ``torchaudio.functional.resample``) or an array/tensor
already at 16 kHz. Multi-channel input is mixed down to mono by averaging the channels; a 2-D
array's channel axis is its shorter one (``(C, T)`` as torchaudio writes it, or ``(T, C)`` as
soundfile does). Integer PCM is scaled to [-1, 1]. ``load_audio`` is idempotent.
"""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo import checks
from zoo.errors import DataError, ShapeError

SAMPLE_RATE = 16000
# Inputs outside these bounds are refused before anything is allocated (a header declaring 1 Hz would
# otherwise be resampled into gigabytes). Raise MAX_SECONDS for longer recordings you trust.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000
MAX_SECONDS = 3600.0


def require(module: str):
    """An optional dependency of the audio extra (:func:`zoo.checks.require`)."""
    return checks.require(module, "audio", "the audio modality")


def load_audio(value: Any) -> Tensor:
    """Any accepted input → float32 mono waveform ``(T,)`` at ``SAMPLE_RATE``."""
    if isinstance(value, Tensor) and value.dtype == torch.float32 and value.dim() == 1:
        return _check_nonempty(value, "waveform")  # already a raw: load is idempotent
    if isinstance(value, (str, os.PathLike)):
        return _read_file(value, os.fspath(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _read_file(io.BytesIO(bytes(value)), f"<{len(value)} bytes>")
    if isinstance(value, tuple) and len(value) == 2 and not np.isscalar(value[0]) and np.isscalar(value[1]):
        wave, sr = value
        sr = check_sample_rate(sr, "(waveform, sample_rate)")
        wave = to_mono(wave)
        check_duration(wave.shape[0], sr, "the waveform")
        return resample(wave, sr)
    return _check_nonempty(to_mono(value), "waveform")


def is_single_audio(value: Any) -> bool:
    """One recording: a path, bytes, a ``(waveform, sample_rate)`` pair, or an array / tensor (a waveform
    ``(T,)``, or channels ``(C, T)`` / ``(T, C)`` mixed to mono). A batch is the dict collate returns."""
    if isinstance(value, tuple):
        return len(value) == 2 and not np.isscalar(value[0]) and np.isscalar(value[1])
    return isinstance(value, (str, os.PathLike, bytes, bytearray, memoryview, Tensor, np.ndarray))


def _read_file(source: Any, label: str) -> Tensor:
    sf = require("soundfile")
    try:
        info = sf.info(source)  # the header only: checked before any sample is read or resampled
        if hasattr(source, "seek"):
            source.seek(0)
    except Exception as exc:  # noqa: BLE001 - soundfile raises LibsndfileError, RuntimeError, OSError…
        raise DataError(f"cannot read audio file {label}: {exc}. The file is missing or not in a format "
                        f"libsndfile reads (WAV, FLAC, OGG, MP3); convert it, e.g. with ffmpeg or sox.") from exc
    check_sample_rate(info.samplerate, f"audio file {label}")
    check_duration(info.frames, info.samplerate, f"audio file {label}")
    _check_not_truncated(info, label)
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)  # (T, C)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read audio file {label}: {exc}. The file is corrupt or not in a format "
                        f"libsndfile reads (WAV, FLAC, OGG, MP3); convert it, e.g. with ffmpeg or sox.") from exc
    if data.shape[0] == 0:
        raise DataError(f"audio file {label} holds no samples; remove it from the dataset.")
    return resample(torch.from_numpy(data).mean(dim=1), sr)


def check_sample_rate(sr: Any, what: str) -> int:
    """A sample rate as an int in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE], or a :class:`DataError`."""
    try:
        rate = int(sr)
        ok = rate == sr and MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise DataError(f"{what}: sample rate {sr!r} Hz is not a plausible audio rate (an integer from "
                        f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz). Pass (waveform, rate) with the rate the samples "
                        f"were recorded at (16000, 44100, 48000…), or fix the file's header (ffmpeg -ar).")
    return rate


def check_duration(frames: int, sr: int, what: str) -> None:
    seconds = frames / sr
    if seconds > MAX_SECONDS:
        raise DataError(f"{what}: {frames} samples at {sr} Hz last {seconds:.0f} s, more than zoo_audio.io.MAX_SECONDS "
                        f"= {MAX_SECONDS:.0f} s, and would take {frames * SAMPLE_RATE / sr * 4 / 2**30:.1f} GiB at "
                        f"{SAMPLE_RATE} Hz. Cut it into clips, or raise zoo_audio.io.MAX_SECONDS if it is meant to be "
                        f"this long.")


def _check_not_truncated(info: Any, label: str) -> None:
    """libsndfile reads a WAV whose data chunk is cut short without an error; its log says "(should be N)"."""
    import re
    cut = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", getattr(info, "extra_info", ""), re.MULTILINE)
    streamed = cut is not None and int(cut.group(1)) in (0x7FFFFFFF, 0xFFFFFFFF)  # "length unknown" (piped WAVs)
    if cut and not streamed and int(cut.group(2)) < int(cut.group(1)):
        raise DataError(f"audio file {label} is truncated: its header declares {cut.group(1)} bytes of samples but "
                        f"the file holds {cut.group(2)} ({info.frames} frames). Re-export or re-download it, or drop it "
                        f"from the dataset.")


def to_mono(value: Any) -> Tensor:
    """An array/tensor ``(T,)``, ``(C, T)`` or ``(T, C)`` → float32 ``(T,)``."""
    try:
        t = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"audio modality: cannot read a {type(value).__name__} as a waveform ({exc}); pass a path, "
                        f"a (waveform, sample_rate) tuple or a 1-D array at {SAMPLE_RATE} Hz.") from exc
    if not (t.is_floating_point() or t.dtype in (torch.int16, torch.int32, torch.int8, torch.uint8)):
        raise DataError(f"audio modality: a waveform must be float or integer PCM, got dtype {t.dtype}.")
    if t.dtype == torch.uint8:  # 8-bit PCM is unsigned, centred on 128
        t = (t.float() - 128.0) / 128.0
    elif not t.is_floating_point():
        t = t.float() / float(torch.iinfo(t.dtype).max + 1)
    t = t.to(torch.float32)
    if t.dim() == 2:
        t = t.mean(dim=0 if t.shape[0] <= t.shape[1] else 1)  # the channel axis is the shorter one
    if t.dim() != 1:
        raise ShapeError(f"audio modality: expected a waveform (T,), (C, T) or (T, C), got shape {tuple(t.shape)}.")
    return t


def resample(wave: Tensor, sr: int) -> Tensor:
    """``(T,)`` at ``sr`` Hz → ``(T',)`` at ``SAMPLE_RATE`` (band-limited sinc interpolation)."""
    sr = check_sample_rate(sr, "resample")
    wave = _check_nonempty(wave, "waveform")
    if sr == SAMPLE_RATE:
        return wave
    functional = require("torchaudio.functional")
    return functional.resample(wave, sr, SAMPLE_RATE).contiguous()


def _check_nonempty(wave: Tensor, what: str) -> Tensor:
    if wave.numel() == 0:
        raise DataError(f"audio modality: the {what} is empty (0 samples); drop it from the dataset.")
    return wave


def collate_audio(raws: list[Tensor]) -> dict[str, Tensor]:
    """Waveforms ``(T_i,)`` → ``{"waveform": (B, T_max) zero-padded, "lengths": (B,) int64}``."""
    if not raws:
        raise DataError("audio modality: cannot collate an empty list of waveforms.")
    for r in raws:
        if not isinstance(r, Tensor) or r.dim() != 1:
            raise ShapeError(f"audio modality: collate expected loaded waveforms (T,), got "
                             f"{getattr(r, 'shape', type(r).__name__)}; run zoo_audio.load_audio first.")
    lengths = torch.tensor([r.shape[0] for r in raws], dtype=torch.long)  # (B,)
    wave = torch.zeros(len(raws), int(lengths.max()), dtype=torch.float32)  # (B, T_max)
    for i, r in enumerate(raws):
        wave[i, : r.shape[0]] = r
    return {"waveform": wave, "lengths": lengths}


def check_batch(batch: Any, who: str) -> tuple[Tensor, Tensor]:
    """Validate an audio batch and return ``(waveform (B, T), lengths (B,))``."""
    if not isinstance(batch, dict) or "waveform" not in batch:
        raise ShapeError(f"{who}: expected an audio batch {{'waveform': (B, T), 'lengths': (B,)}}, got "
                         f"{type(batch).__name__}; build it with model.preprocess('audio', raws).")
    wave = batch["waveform"]
    if wave.dim() != 2:
        raise ShapeError(f"{who}: expected waveform of shape (B, T), got {tuple(wave.shape)}.")
    lengths = batch.get("lengths")
    if lengths is None:
        lengths = torch.full((wave.shape[0],), wave.shape[1], dtype=torch.long, device=wave.device)
    if lengths.shape != (wave.shape[0],):
        raise ShapeError(f"{who}: expected lengths of shape ({wave.shape[0]},), got {tuple(lengths.shape)}.")
    return wave, lengths.to(wave.device)


def render_audio(value: Any) -> tuple[str, bytes]:
    """Audio (anything :func:`load_audio` reads) → ``("audio/wav", 16-bit PCM WAV bytes)`` for a web page."""
    import wave
    pcm = (load_audio(value).clamp(-1, 1) * 32767).round().to(torch.int16).numpy()  # (T,)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.astype("<i2").tobytes())
    return "audio/wav", buf.getvalue()
