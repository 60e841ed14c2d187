"""``video/frames``: any registered image encoder applied to every frame, then temporal pooling.

    video (B, T, C, H, W) → image encoder per frame → (B, T, D) → temporal → (B, D)

- ``image_encoder`` / ``image_kwargs``: built with ``zoo.create_encoder("image", …)`` (``"mlp"``,
  ``"timm:resnet18"``, …); its ``preprocess`` (when it has one) prepares the frames.
- ``temporal="mean"``: average of the frame features (blind to frame order);
  ``temporal="transformer"``: a small pre-norm transformer over the frames with learned
  position embeddings (``temporal_layers``, ``heads``, up to ``max_frames`` frames), mean-pooled.
- ``num_frames``: when set, ``preprocess`` samples that many frames uniformly from each video.

``forward_levels`` exposes ``frame_mean`` (the mean frame feature) and ``temporal`` (the
temporal model's output, also ``final``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from zoo.checks import check_sizes
from zoo.errors import RecipeError, ShapeError, UnknownNameError

from .io import collate_video, frame_indices, load_video

TEMPORAL = ("mean", "transformer")


class TemporalTransformer(nn.Module):
    """``(B, T, D)`` → ``(B, D)``: learned positions, pre-norm transformer layers, mean over frames."""

    def __init__(self, dim: int, layers: int = 1, heads: int = 4, max_frames: int = 64, dropout: float = 0.0):
        super().__init__()
        check_sizes("video frames", dim=dim, layers=layers, heads=heads, max_frames=max_frames, dropout=dropout)
        if dim % heads:
            raise RecipeError(f"video frames: the image features ({dim}) must be divisible by heads ({heads}); "
                              f"change heads or the image encoder's output size.")
        if layers < 1 or max_frames < 1:
            raise RecipeError(f"video frames: temporal_layers and max_frames must be ≥ 1, got {layers}, {max_frames}.")
        self.pos = nn.Parameter(torch.randn(max_frames, dim) * 0.02)  # (T_max, D)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        if t > self.pos.shape[0]:
            raise ShapeError(f"video frames: expected at most max_frames={self.pos.shape[0]} frames, got {t}; "
                             f"raise max_frames or set num_frames.")
        return self.norm(self.layers(x + self.pos[:t]).mean(dim=1))  # (B, D)


class FramesEncoder(nn.Module):
    """Video batch ``(B, T, C, H, W)`` → ``(B, D_image)``."""

    def __init__(self, image_encoder: str = "mlp", image_kwargs: dict | None = None, temporal: str = "mean",
                 temporal_layers: int = 1, heads: int = 4, max_frames: int = 64, num_frames: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        from zoo import create_encoder
        self.image = create_encoder("image", image_encoder, **(image_kwargs or {}))
        dim = self.image.output_dim
        if temporal not in TEMPORAL:
            raise UnknownNameError("temporal model", temporal, TEMPORAL)
        self.temporal = (TemporalTransformer(dim, temporal_layers, heads, max_frames, dropout)
                         if temporal == "transformer" else None)
        if num_frames is not None and num_frames < 1:
            raise RecipeError(f"video frames: num_frames must be ≥ 1, got {num_frames}.")
        self.num_frames = num_frames
        self.output_dim = dim
        self.level_dims = {"frame_mean": dim, "temporal": dim}

    def frame_features(self, video: Tensor) -> Tensor:
        if not isinstance(video, Tensor) or video.dim() != 5:
            raise ShapeError(f"video frames: expected a batch (B, T, C, H, W), got "
                             f"{tuple(getattr(video, 'shape', ())) or type(video).__name__}.")
        b, t = video.shape[:2]
        feats = self.image(video.flatten(0, 1))  # (B·T, D)
        return feats.reshape(b, t, -1)  # (B, T, D)

    def forward_levels(self, video: Tensor) -> dict[str, Tensor]:
        feats = self.frame_features(video)  # (B, T, D)
        frame_mean = feats.mean(dim=1)  # (B, D)
        temporal = self.temporal(feats) if self.temporal is not None else frame_mean
        return {"frame_mean": frame_mean, "temporal": temporal, "final": temporal}

    def forward(self, video: Tensor) -> Tensor:
        return self.forward_levels(video)["final"]

    def preprocess(self, raws: list[Any]) -> Tensor:
        """Videos → ``(B, T, C', H', W')``: ``num_frames`` uniform frames each, then the image
        encoder's own preprocess of every frame (if it has one)."""
        videos = [load_video(r) for r in raws]
        if self.num_frames is not None:
            videos = [v[frame_indices(v.shape[0], self.num_frames)] for v in videos]
        if not hasattr(self.image, "preprocess"):
            return collate_video(videos)
        lengths = {v.shape[0] for v in videos}
        if len(lengths) != 1:
            collate_video(videos)  # raises the ShapeError that says how to fix T
        frames = self.image.preprocess([f for v in videos for f in v])  # (B·T, C', H', W')
        return frames.reshape(len(videos), lengths.pop(), *frames.shape[1:])

    def preprocess_config(self) -> dict[str, Any]:
        image = self.image.preprocess_config() if hasattr(self.image, "preprocess_config") else {}
        return {"num_frames": self.num_frames, "image": image}

    def save_assets(self, directory) -> None:
        if hasattr(self.image, "save_assets"):
            self.image.save_assets(directory)

    def load_assets(self, directory) -> None:
        if hasattr(self.image, "load_assets"):
            self.image.load_assets(directory)
