"""``audio/ast``: an Audio Spectrogram Transformer (Gong et al. 2021) built from
``transformers.ASTConfig`` at the size you ask for (random init; tiny by default).

Features come from the zoo's shared log-mel frontend (:class:`.frontend.LogMel`, torchaudio),
not from AST's Kaldi-fbank feature extractor: the spectrogram ``(B, n_mels, F)`` is cut or
zero-padded (0 = the standardised mean) to ``max_frames`` and given to ``ASTModel`` as
``input_values (B, max_frames, n_mels)``. As in the original, AST sees a fixed-length input
and no attention mask. The output is AST's pooled ``(CLS + distillation token) / 2``;
``forward_levels`` adds the token mean of every intermediate layer (``layer1`` …).
"""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import check_sizes
from zoo.errors import RecipeError

from .frontend import Frontend
from .io import SAMPLE_RATE, check_batch, require


class ASTEncoder(nn.Module):
    """Audio batch → ``(B, hidden_size)``."""

    def __init__(self, hidden_size: int = 64, layers: int = 2, heads: int = 4, intermediate_size: int | None = None,
                 n_mels: int = 64, max_frames: int = 256, patch_size: int = 16, frequency_stride: int = 10,
                 time_stride: int = 10, hop_length: int = 160, n_fft: int = 400, dropout: float = 0.0,
                 specaugment: dict | bool | None = None, config: dict | None = None):
        super().__init__()
        check_sizes("audio ast", hidden_size=hidden_size, layers=layers, heads=heads, patch_size=patch_size,
                    dropout=dropout)
        if hidden_size % heads:
            raise RecipeError(f"audio ast: hidden_size ({hidden_size}) must be divisible by heads ({heads}).")
        if max_frames < patch_size or n_mels < patch_size:
            raise RecipeError(f"audio ast: n_mels ({n_mels}) and max_frames ({max_frames}) must be ≥ patch_size "
                              f"({patch_size}).")
        transformers = require("transformers")
        cfg = transformers.ASTConfig(
            hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=intermediate_size or 4 * hidden_size, num_mel_bins=n_mels, max_length=max_frames,
            patch_size=patch_size, frequency_stride=frequency_stride, time_stride=time_stride,
            hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, **(config or {}))
        self.frontend = Frontend(specaugment, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length)
        self.ast = transformers.ASTModel(cfg)
        self.max_frames = max_frames
        self.output_dim = hidden_size
        self.level_dims = {f"layer{i}": hidden_size for i in range(1, layers)}

    def inputs(self, batch: Any) -> Tensor:
        wave, lengths = check_batch(batch, "audio ast")
        x, _ = self.frontend(wave, lengths)  # (B, M, F)
        f = x.shape[-1]
        x = x[..., : self.max_frames] if f >= self.max_frames else F.pad(x, (0, self.max_frames - f))
        return x.transpose(1, 2)  # (B, max_frames, M)

    def forward(self, batch: Any) -> Tensor:
        return self.ast(input_values=self.inputs(batch)).pooler_output  # (B, H)

    def forward_levels(self, batch: Any) -> dict[str, Tensor]:
        out = self.ast(input_values=self.inputs(batch), output_hidden_states=True)
        levels = {f"layer{i}": out.hidden_states[i].mean(dim=1) for i in self.level_index()}  # (B, H) each
        levels["final"] = out.pooler_output
        return levels

    def level_index(self) -> range:
        return range(1, self.ast.config.num_hidden_layers)

    def preprocess_config(self) -> dict[str, Any]:
        mel = self.frontend.logmel
        return {"sample_rate": SAMPLE_RATE, "n_mels": mel.n_mels, "n_fft": mel.n_fft, "hop_length": mel.hop_length,
                "max_frames": self.max_frames}
