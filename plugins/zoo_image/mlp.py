"""``image/mlp``: flatten ``(C, H, W)`` → MLP. Small and fast; made for 8×8 digits.

    enc = zoo.create_encoder("image", "mlp", in_shape=[1, 8, 8], hidden=128, out_dim=64)
    z = enc(enc.preprocess(raws))           # (B, 64)
    enc.forward_levels(batch)               # {"layer1": (B, 128), "final": (B, 64)}
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from zoo.checks import check_sizes
from zoo.errors import RecipeError, ShapeError
from zoo.layers import mlp_blocks, mlp_levels

from .preprocess import ImagePreprocess, PreprocessMixin


class MLPImageEncoder(PreprocessMixin, nn.Module):
    """``(B, C, H, W) -> (B, out_dim)``; each hidden layer is a level ``layer1``, ``layer2``…

    ``layers`` counts linear layers (``layers - 1`` hidden ones of width ``hidden``, each
    Linear → GELU → Dropout). ``preprocess`` brings raws to ``in_shape`` (channels and size)
    and normalises with ``mean``/``std`` (default: identity, raws stay in [0, 1]).
    """

    def __init__(self, in_shape: Sequence[int] = (1, 8, 8), hidden: int = 128, out_dim: int = 128,
                 layers: int = 2, dropout: float = 0.0, mean: float | Sequence[float] = 0.0,
                 std: float | Sequence[float] = 1.0, interpolation: str = "bilinear"):
        super().__init__()
        if len(in_shape) != 3 or not all(isinstance(s, int) and s > 0 for s in in_shape):
            raise RecipeError(f"in_shape must be [channels, height, width] of positive ints, got {list(in_shape)}.")
        check_sizes("image mlp", hidden=hidden, out_dim=out_dim, layers=layers, dropout=dropout)
        self.in_shape = tuple(in_shape)
        c, h, w = self.in_shape
        dims = [c * h * w] + [hidden] * (layers - 1) + [out_dim]
        self.blocks = mlp_blocks(dims, nn.GELU, dropout)
        self.output_dim = out_dim
        self.level_dims = {f"layer{i + 1}": hidden for i in range(layers - 1)}
        self.preprocessor = ImagePreprocess(image_size=(h, w), channels=c, mean=mean, std=std,
                                            interpolation=interpolation)

    def forward_levels(self, x: Tensor) -> dict[str, Tensor]:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ShapeError(f"image/mlp: expected a batch (B, {', '.join(map(str, self.in_shape))}), got "
                             f"{tuple(x.shape)}. Use encoder.preprocess(raws) or set in_shape.")
        return mlp_levels(self.blocks, x.flatten(1))  # {"layer<i>": (B, hidden), "final": (B, out_dim)}

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_levels(x)["final"]  # (B, out_dim)
