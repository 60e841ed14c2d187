"""The log-mel frontend the audio encoders share, and SpecAugment.

``LogMel`` turns a padded batch ``waveform (B, T)`` + ``lengths (B,)`` into a standardised
log-mel spectrogram ``(B, n_mels, F)`` and the number of valid frames of each row. Frames are
not centred (``center=False``), so a valid frame only ever sees valid samples: the features of
a clip do not depend on how much padding its batch added. Padded frames are set to 0 (the
standardised mean).

``SpecAugment`` (Park et al. 2019) masks random frequency bands and time spans of that
spectrogram in train mode only. Like dropout it draws from the global torch RNG (which the
trainer seeds); the per-sample, generator-seeded augmentations live in :mod:`.augment`.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.errors import RecipeError

from .io import SAMPLE_RATE, require


class LogMel(nn.Module):
    """``(B, T)`` waveform at 16 kHz → ``(B, n_mels, F)`` log-mel and ``(B,)`` frame counts.

    ``log(mel_power + eps)`` is standardised with the fixed constants ``mean`` and ``std``
    (chosen so speech and tones land roughly in [-2, 2]; not dataset statistics).
    """

    def __init__(self, n_mels: int = 64, n_fft: int = 400, win_length: int | None = None, hop_length: int = 160,
                 f_min: float = 0.0, f_max: float | None = None, mean: float = -5.0, std: float = 5.0,
                 eps: float = 1e-6):
        super().__init__()
        if n_mels < 1 or hop_length < 1 or n_fft < 2:
            raise RecipeError(f"log-mel needs n_mels ≥ 1, hop_length ≥ 1 and n_fft ≥ 2; "
                              f"got {n_mels}, {hop_length}, {n_fft}.")
        if std <= 0:
            raise RecipeError(f"log-mel std must be > 0, got {std}.")
        transforms = require("torchaudio.transforms")
        self.mel = transforms.MelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=n_fft, win_length=win_length,
                                             hop_length=hop_length, f_min=f_min, f_max=f_max, n_mels=n_mels,
                                             center=False, power=2.0)
        self.n_mels, self.n_fft, self.hop_length = n_mels, n_fft, hop_length
        self.mean, self.std, self.eps = mean, std, eps

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        """Valid frames per row: ``1 + (L - n_fft) // hop`` (at least 1)."""
        return (lengths.clamp(min=self.n_fft) - self.n_fft).div(self.hop_length, rounding_mode="floor") + 1

    def _apply(self, fn, recurse=True):
        """``.to(dtype)`` / ``.half()`` move the filterbank and window but keep them float32: the log-mel is
        computed in float32 whatever the model's dtype (bf16 spectra lose the quiet bands)."""
        super()._apply(fn, recurse)
        self.mel.float()
        return self

    def forward(self, waveform: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Computed in float32; returned in the waveform's dtype (the tower's, as ``encode`` casts it)."""
        dtype = waveform.dtype if waveform.is_floating_point() else torch.float32
        if waveform.shape[-1] < self.n_fft:  # a batch of very short clips: one (zero-padded) frame
            waveform = nn.functional.pad(waveform, (0, self.n_fft - waveform.shape[-1]))
        with torch.autocast(waveform.device.type, enabled=False):
            power = self.mel(waveform.float())  # (B, n_mels, F)
        x = (torch.log(power + self.eps) - self.mean) / self.std
        frames = self.frame_lengths(lengths)  # (B,)
        return (x * frame_mask(frames, x.shape[-1])[:, None, :]).to(dtype), frames


def frame_mask(frames: Tensor, total: int) -> Tensor:
    """``(B,)`` valid counts → ``(B, total)`` bool, True on valid frames."""
    return torch.arange(total, device=frames.device)[None, :] < frames[:, None]


class SpecAugment(nn.Module):
    """Zero ``freq_masks`` bands of up to ``freq_width`` mel bins and ``time_masks`` spans of up
    to ``time_width`` frames (within each row's valid frames); identity in eval mode."""

    def __init__(self, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2, time_width: int = 10):
        super().__init__()
        given = {"freq_masks": freq_masks, "freq_width": freq_width, "time_masks": time_masks, "time_width": time_width}
        if min(given.values()) < 0:
            raise RecipeError(f"specaugment: mask counts and widths must be ≥ 0, got {given}.")
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def forward(self, x: Tensor, frames: Tensor) -> Tensor:
        if not self.training:
            return x
        b, m, f = x.shape
        full = torch.full((b,), m, device=x.device)
        keep = torch.ones(b, m, f, dtype=torch.bool, device=x.device)
        for _ in range(self.freq_masks):
            keep &= ~_spans(full, m, self.freq_width)[:, :, None]  # (B, M, 1)
        for _ in range(self.time_masks):
            keep &= ~_spans(frames, f, self.time_width)[:, None, :]  # (B, 1, F)
        return x * keep


def _spans(extent: Tensor, total: int, max_width: int) -> Tensor:
    """One random span per row, width in [0, max_width], inside ``[0, extent)`` → ``(B, total)`` bool."""
    b = extent.shape[0]
    width = torch.randint(0, max_width + 1, (b,), device=extent.device).minimum(extent)
    start = (torch.rand(b, device=extent.device) * (extent - width + 1)).floor().long()
    pos = torch.arange(total, device=extent.device)[None, :]
    return (pos >= start[:, None]) & (pos < (start + width)[:, None])


def make_specaugment(spec: dict | bool | None) -> nn.Module:
    """The ``specaugment=`` encoder option: ``None``/``False`` → off, ``True`` → defaults, a dict → options."""
    if not spec:
        return nn.Identity()
    return SpecAugment(**({} if spec is True else dict(spec)))


class Frontend(nn.Module):
    """``LogMel`` then (train mode) ``SpecAugment``: batch → ``(B, n_mels, F)``, ``(B,)`` frames."""

    def __init__(self, specaugment: dict | bool | None = None, **mel_kw):
        super().__init__()
        self.logmel = LogMel(**mel_kw)
        self.specaugment = make_specaugment(specaugment)

    def forward(self, waveform: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x, frames = self.logmel(waveform, lengths)
        if isinstance(self.specaugment, SpecAugment):
            x = self.specaugment(x, frames)
        return x, frames
