"""Waveform augmentations for ``audio`` raws ``(T,)`` at 16 kHz, each seeded by the generator.

``make(**kw) -> apply(raw, generator) -> raw``. ``time_mask`` and ``freq_mask`` are the
waveform-domain counterparts of SpecAugment (zeroed time spans; a frequency band removed in
the Fourier domain); the spectrogram-domain SpecAugment is the encoder option
``specaugment={...}`` of ``cnn`` and ``ast`` (train mode only).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from zoo.errors import RecipeError

from .io import SAMPLE_RATE

Aug = Callable[[Tensor, torch.Generator], Tensor]


def _uniform(lo: float, hi: float, g: torch.Generator) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def _randint(lo: int, hi: int, g: torch.Generator) -> int:
    """An integer in ``[lo, hi]``."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


def _check_range(name: str, lo: float, hi: float) -> None:
    if lo > hi:
        raise RecipeError(f"{name}: the range is empty ({lo} > {hi}); give min ≤ max.")


def gain(min_db: float = -6.0, max_db: float = 6.0) -> Aug:
    """Scale the waveform by a random gain in decibels."""
    _check_range("gain", min_db, max_db)

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        return raw * 10 ** (_uniform(min_db, max_db, g) / 20)

    return apply


def noise(min_snr_db: float = 10.0, max_snr_db: float = 30.0) -> Aug:
    """Add white Gaussian noise at a random signal-to-noise ratio (dB)."""
    _check_range("noise", min_snr_db, max_snr_db)

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        snr = _uniform(min_snr_db, max_snr_db, g)
        power = raw.pow(2).mean().clamp(min=1e-10)
        std = torch.sqrt(power / 10 ** (snr / 10))
        return raw + std * torch.randn(raw.shape, generator=g)

    return apply


def time_shift(max_seconds: float = 0.1, roll: bool = True) -> Aug:
    """Shift by up to ``max_seconds`` either way; wrap around (``roll``) or fill with silence."""
    if max_seconds < 0:
        raise RecipeError(f"time_shift: max_seconds must be ≥ 0, got {max_seconds}.")

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        limit = min(int(max_seconds * SAMPLE_RATE), raw.shape[0] - 1)
        shift = _randint(-limit, limit, g)
        out = torch.roll(raw, shift)
        if not roll and shift > 0:
            out[:shift] = 0
        elif not roll and shift < 0:
            out[shift:] = 0
        return out

    return apply


def random_crop(seconds: float = 1.0) -> Aug:
    """A random window of exactly ``seconds``; shorter clips are zero-padded at the end."""
    if seconds <= 0:
        raise RecipeError(f"random_crop: seconds must be > 0, got {seconds}.")
    size = max(1, round(seconds * SAMPLE_RATE))

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        if raw.shape[0] <= size:
            return torch.nn.functional.pad(raw, (0, size - raw.shape[0]))
        start = _randint(0, raw.shape[0] - size, g)
        return raw[start:start + size].clone()

    return apply


def time_mask(max_seconds: float = 0.1, masks: int = 1) -> Aug:
    """Silence ``masks`` random spans of up to ``max_seconds`` each (SpecAugment's time masking)."""
    if max_seconds < 0 or masks < 0:
        raise RecipeError(f"time_mask: max_seconds and masks must be ≥ 0, got {max_seconds}, {masks}.")

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        out = raw.clone()
        for _ in range(masks):
            width = _randint(0, min(int(max_seconds * SAMPLE_RATE), raw.shape[0]), g)
            start = _randint(0, raw.shape[0] - width, g)
            out[start:start + width] = 0
        return out

    return apply


def freq_mask(max_hz: float = 1000.0, masks: int = 1) -> Aug:
    """Remove ``masks`` random frequency bands of up to ``max_hz`` each (SpecAugment's frequency
    masking, done on the waveform: zero the band's Fourier coefficients)."""
    if max_hz < 0 or masks < 0:
        raise RecipeError(f"freq_mask: max_hz and masks must be ≥ 0, got {max_hz}, {masks}.")

    def apply(raw: Tensor, g: torch.Generator) -> Tensor:
        spec = torch.fft.rfft(raw)  # (T//2 + 1,), bin k ↔ k·sr/T Hz
        bins = spec.shape[0]
        per_hz = (raw.shape[0] / SAMPLE_RATE)
        for _ in range(masks):
            width = _randint(0, min(math.ceil(max_hz * per_hz), bins), g)
            start = _randint(0, bins - width, g)
            spec[start:start + width] = 0
        return torch.fft.irfft(spec, n=raw.shape[0])

    return apply


AUGMENTATIONS = {
    "gain": (gain, "random gain in dB (min_db, max_db)"),
    "noise": (noise, "white noise at a random SNR in dB (min_snr_db, max_snr_db)"),
    "time_shift": (time_shift, "shift by up to max_seconds, rolled or silence-filled"),
    "random_crop": (random_crop, "random fixed-length window (seconds), zero-padded if shorter"),
    "time_mask": (time_mask, "silence random time spans (waveform SpecAugment)"),
    "freq_mask": (freq_mask, "remove random frequency bands via the FFT (waveform SpecAugment)"),
}
