"""``digits-trimodal``: a real digit image, its caption and an audio clip of the digit.

The audio is, with ``audio="auto"`` (default), spoken by **espeak-ng** when that program is
on ``PATH`` and otherwise the digit's **DTMF tone** (the telephone keypad code: the sum of a
row and a column frequency); ``audio="speech"`` or ``"tones"`` forces one. The dataset's
``description`` says which one was used. Both are synthetic.

- speech: each digit word is spoken once per voice of :data:`VOICES` (``espeak-ng -w`` into
  a temporary file, read with soundfile, silence trimmed, resampled 22.05 → 16 kHz by FFT
  (:func:`fft_resample`)); each sample uses one of the voices, chosen by its generator;
- tones: 0.3 s of the digit's two DTMF frequencies under a Hann envelope.

Then, per sample, from a generator seeded by (seed, i): a random start in the ``seconds``-long
clip (default 0.75 s), a gain in [0.4, 0.9] and Gaussian noise (std 0.005).
"""
from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from zoo.checks import require
from zoo.errors import DataError

from .digits import NUMBER_WORDS, DigitsBase
from .tones import SAMPLE_RATE

VOICES = [("en-us", 40, 150), ("en-us", 65, 175), ("en-gb", 50, 160), ("en-gb", 75, 140)]  # (voice, pitch, speed)
DTMF = {1: (697, 1209), 2: (697, 1336), 3: (697, 1477), 4: (770, 1209), 5: (770, 1336),
        6: (770, 1477), 7: (852, 1209), 8: (852, 1336), 9: (852, 1477), 0: (941, 1336)}


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


@lru_cache(maxsize=64)
def spoken(word: str, voice: str, pitch: int, speed: int) -> torch.Tensor:
    """``word`` spoken by espeak-ng → float32 ``(T,)`` at 16 kHz, leading/trailing silence trimmed."""
    sf = require("soundfile", "audio", "espeak-ng speech in digits-trimodal")
    with tempfile.TemporaryDirectory(prefix="zoo-espeak-") as tmp:
        path = Path(tmp) / "word.wav"
        cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), word]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise DataError(f"espeak-ng failed to speak {word!r} ({exc}); use audio='tones' "
                            f"or reinstall espeak-ng.") from exc
        wave, sr = sf.read(path, dtype="float32")
    wave = fft_resample(torch.from_numpy(wave), sr, SAMPLE_RATE)                 # (T,)
    loud = (wave.abs() > 0.02).nonzero().flatten()
    wave = wave[loud[0]: loud[-1] + 1] if len(loud) else wave
    return wave / wave.abs().max().clamp(min=1e-6)


def fft_resample(wave: torch.Tensor, sr: int, target: int) -> torch.Tensor:
    """Band-limited resampling ``(T,)`` at ``sr`` → ``(T · target / sr,)`` by truncating the spectrum."""
    n_out = round(len(wave) * target / sr)
    spectrum = torch.fft.rfft(wave.double())[: n_out // 2 + 1]
    return (torch.fft.irfft(spectrum, n=n_out) * n_out / len(wave)).float()


def dtmf(digit: int, seconds: float = 0.3) -> torch.Tensor:
    """The digit's DTMF tone → float32 ``(T,)`` at 16 kHz, peak 1."""
    t = torch.arange(int(seconds * SAMPLE_RATE), dtype=torch.float32) / SAMPLE_RATE
    low, high = DTMF[digit]
    wave = 0.5 * (torch.sin(2 * math.pi * low * t) + torch.sin(2 * math.pi * high * t))
    return wave * torch.hann_window(len(t), periodic=False)


def place(sound: torch.Tensor, seconds: float, g: torch.Generator) -> torch.Tensor:
    """Put ``sound`` at a random start of a ``seconds``-long clip, random gain, light noise → ``(T,)``."""
    total = int(seconds * SAMPLE_RATE)
    sound = sound[:total]
    start = int(torch.randint(total - len(sound) + 1, (1,), generator=g))
    gain = 0.4 + 0.5 * float(torch.rand(1, generator=g))
    clip = torch.zeros(total)
    clip[start:start + len(sound)] = gain * sound
    return (clip + 0.005 * torch.randn(total, generator=g)).clamp(-1, 1)


class DigitsTrimodal(DigitsBase):
    """Digit image ``(1, 8, 8)`` + caption + audio ``(T,)`` (espeak-ng speech or DTMF tone); label ``class``."""

    name = "digits-trimodal"
    fields = {"image": "image", "caption": "text", "audio": "audio"}
    description = ("scikit-learn's real 8×8 digits with template captions and a synthetic 16 kHz clip of the "
                   "digit: espeak-ng speech when installed, else its DTMF tone; 80/20 seeded split")

    def __init__(self, split: str = "train", size: int | None = None, captions: str = "fixed",
                 audio: str = "auto", seconds: float = 0.75, seed: int = 0):
        super().__init__(split, size, captions, seed)
        if audio not in ("auto", "speech", "tones"):
            raise DataError(f"digits-trimodal: audio must be 'auto', 'speech' or 'tones', got {audio!r}.")
        if audio == "speech" and not espeak_available():
            raise DataError("digits-trimodal: audio='speech' needs the espeak-ng program on PATH "
                            "(e.g. `apt-get install espeak-ng`); or use audio='tones'.")
        self.audio = "speech" if audio == "speech" or audio == "auto" and espeak_available() else "tones"
        self.seconds = seconds
        used = ("speech by espeak-ng (4 voices)" if self.audio == "speech"
                else "DTMF tones (espeak-ng not used)")
        self.description = f"{type(self).description}; audio here: {used}"

    def sound(self, digit: int, g: torch.Generator) -> torch.Tensor:
        if self.audio == "tones":
            return dtmf(digit)
        voice = VOICES[int(torch.randint(len(VOICES), (1,), generator=g))]
        return spoken(NUMBER_WORDS[digit], *voice)

    def __getitem__(self, i: int) -> dict[str, Any]:
        digit = int(self.labels[i])
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.indices[i]))
        clip = place(self.sound(digit, g), self.seconds, g)                           # (T,)
        return {"image": self.images[i], "caption": self.caption(i), "audio": clip, "class": digit}
