"""``audio/cnn``: a small PANN/CLAP-style CNN over the log-mel spectrogram.

log-mel ``(B, 1, M, F)`` → per-mel BatchNorm → ``layers`` blocks (two 3×3 conv-BN-ReLU, then
2×2 max pooling; channels double each block) → mean over frequency → max + mean over the
valid frames → linear to ``out_dim``. Every activation at a padded frame is zeroed, so in eval
mode a clip's embedding is the same alone or padded in a batch. ``forward_levels`` gives the
globally pooled output of each block (``block1`` …) for hierarchical objectives.
"""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import check_sizes

from .frontend import Frontend, frame_mask
from .io import SAMPLE_RATE, check_batch


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        mask = frame_mask(frames, x.shape[-1])[:, None, None, :]  # (B, 1, 1, F)
        x = F.relu(self.bn1(self.conv1(x))) * mask
        x = F.relu(self.bn2(self.conv2(x))) * mask  # (B, C, M, F), zero at padded frames
        x = F.max_pool2d(x, 2, ceil_mode=True)  # (B, C, ⌈M/2⌉, ⌈F/2⌉)
        return x, (frames + 1) // 2


def pool_time(x: Tensor, frames: Tensor) -> Tensor:
    """``(B, C, F)`` → ``(B, C)``: max + mean over each row's valid frames."""
    mask = frame_mask(frames, x.shape[-1])[:, None, :]  # (B, 1, F)
    mean = (x * mask).sum(-1) / frames.clamp(min=1)[:, None].to(x.dtype)
    peak = x.masked_fill(~mask, float("-inf")).amax(-1)
    return mean + peak


class CNNEncoder(nn.Module):
    """Audio batch ``{"waveform": (B, T), "lengths": (B,)}`` → ``(B, out_dim)``."""

    def __init__(self, channels: int = 16, layers: int = 4, out_dim: int = 128, n_mels: int = 64,
                 hop_length: int = 160, n_fft: int = 400, win_length: int | None = None, dropout: float = 0.0,
                 specaugment: dict | bool | None = None):
        super().__init__()
        check_sizes("audio cnn", channels=channels, layers=layers, out_dim=out_dim, dropout=dropout)
        self.frontend = Frontend(specaugment, n_mels=n_mels, n_fft=n_fft, win_length=win_length, hop_length=hop_length)
        self.bn0 = nn.BatchNorm2d(n_mels)  # one scale and shift per mel bin
        widths = [channels * 2**i for i in range(layers)]
        self.blocks = nn.ModuleList(ConvBlock(a, b) for a, b in zip([1] + widths[:-1], widths))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], out_dim)
        self.output_dim = out_dim
        self.level_dims = {f"block{i + 1}": w for i, w in enumerate(widths)}

    def spectrogram(self, batch: Any) -> tuple[Tensor, Tensor]:
        wave, lengths = check_batch(batch, "audio cnn")
        x, frames = self.frontend(wave, lengths)  # (B, M, F), (B,)
        x = self.bn0(x[:, :, None, :]).squeeze(2)  # per-mel normalisation, (B, M, F)
        return (x * frame_mask(frames, x.shape[-1])[:, None, :])[:, None], frames  # (B, 1, M, F)

    def forward_levels(self, batch: Any) -> dict[str, Tensor]:
        x, frames = self.spectrogram(batch)
        out = {}
        for i, block in enumerate(self.blocks):
            x, frames = block(x, frames)  # (B, C_i, M_i, F_i)
            out[f"block{i + 1}"] = pool_time(x.mean(dim=2), frames)  # (B, C_i)
        out["final"] = self.fc(self.dropout(out[f"block{len(self.blocks)}"]))  # (B, out_dim)
        return out

    def forward(self, batch: Any) -> Tensor:
        return self.forward_levels(batch)["final"]

    def preprocess_config(self) -> dict[str, Any]:
        mel = self.frontend.logmel
        return {"sample_rate": SAMPLE_RATE, "n_mels": mel.n_mels, "n_fft": mel.n_fft, "hop_length": mel.hop_length}
