"""Helpers shared by the image plugin's modules: small argument checks (optional imports: :func:`zoo.checks.require`)."""
from __future__ import annotations

from collections.abc import Sequence

from zoo.errors import RecipeError


def pair(value: int | Sequence[int] | None, name: str) -> tuple[int, int] | None:
    """``224`` or ``[224, 224]`` → ``(224, 224)``; ``None`` stays ``None``."""
    if value is None:
        return None
    hw = (value, value) if isinstance(value, int) else tuple(value)
    if len(hw) != 2 or not all(isinstance(v, int) and v > 0 for v in hw):
        raise RecipeError(f"{name} must be a positive int or [height, width], got {value!r}.")
    return hw  # type: ignore[return-value]


def check_probability(p: float, name: str = "p") -> float:
    if not 0.0 <= p <= 1.0:
        raise RecipeError(f"{name} must be a probability in [0, 1], got {p}.")
    return float(p)


def check_range(value: Sequence[float], name: str, low: float = 0.0, high: float = float("inf")) -> tuple[float, float]:
    """A ``[min, max]`` pair with ``low ≤ min ≤ max ≤ high``."""
    lo_hi = tuple(float(v) for v in value)
    if len(lo_hi) != 2 or not low <= lo_hi[0] <= lo_hi[1] <= high:
        raise RecipeError(f"{name} must be [min, max] with {low} ≤ min ≤ max ≤ {high}, got {list(value)}.")
    return lo_hi  # type: ignore[return-value]
