"""A tiny test modality so the core runs and is tested with no modality plugin installed.

- modality ``vector``: a raw is a 1-D float vector (list, array or tensor); a batch is ``(B, F)``.
- encoder ``vector/mlp``: an MLP ``(B, F) -> (B, out_dim)`` with ``forward_levels`` (each hidden layer).
- augmentation ``vector/gaussian_noise``: adds ``std``·N(0, 1), seeded by the generator.
- dataset ``synthetic-pairs``: two noisy linear views ``x`` and ``y`` of class centroids, label ``class``.
- dataset ``synthetic-hierarchy``: nested groups with a label per level (COMET, BioCLIP recipes).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from zoo.checks import check_sizes
from zoo.data.datasets import ZooDataset
from zoo.errors import DataError, RecipeError, ShapeError
from zoo.hookspecs import hookimpl
from zoo.layers import mlp_blocks, mlp_levels


def load_vector(value: Any) -> Tensor:
    # already loaded (the hot path: datasets hand out tensors): identity checks, ~30 ns less per call than
    # isinstance and ==, which is 15 µs a batch of 256 pairs (a subclass takes the full path below, same result)
    if value.__class__ is Tensor and value.dtype is torch.float32 and value.dim() == 1:
        return value
    try:
        t = torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"vector modality: cannot read {type(value).__name__} as a float vector ({exc}).") from exc
    if t.dim() != 1:
        raise ShapeError(f"vector modality: expected a 1-D vector (F,), got shape {tuple(t.shape)}.")
    return t


def is_single_vector(value: Any) -> bool:
    """One vector: a 1-D tensor / array, or a flat list of numbers."""
    if isinstance(value, (Tensor, np.ndarray)):
        return value.ndim == 1
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, (int, float)) for v in value)


def collate_vectors(raws: list[Tensor]) -> Tensor:
    try:  # the lengths are checked only when stacking fails (torch.stack compares them in C)
        return torch.stack(raws)  # (B, F)
    except TypeError as exc:  # not tensors: raws that skipped load (a plugin augmentation returning lists, …)
        kinds = sorted({type(r).__name__ for r in raws})
        raise DataError(f"vector modality: a batch takes loaded vectors (1-D float tensors), got {', '.join(kinds)}; "
                        f"an augmentation must return what load_vector returns.") from exc
    except RuntimeError:
        sizes = {r.shape[0] for r in raws}
        if len(sizes) == 1:
            raise
    raise ShapeError(f"vector modality: vectors in a batch must have one length, got lengths {sorted(sizes)}.")


class MLPEncoder(nn.Module):
    """``(B, in_dim) -> (B, out_dim)``; hidden layers are exposed as levels ``layer1``…"""

    def __init__(self, in_dim: int = 16, hidden: int = 32, out_dim: int = 32, layers: int = 2, dropout: float = 0.0):
        super().__init__()
        check_sizes("vector mlp", in_dim=in_dim, hidden=hidden, out_dim=out_dim, layers=layers, dropout=dropout)
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        self.blocks = mlp_blocks(dims, nn.GELU, dropout)
        self.in_dim, self.output_dim = in_dim, out_dim
        self.level_dims = {f"layer{i + 1}": hidden for i in range(layers - 1)}

    def forward_levels(self, x: Tensor) -> dict[str, Tensor]:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ShapeError(f"mlp encoder: expected input (B, {self.in_dim}), got {tuple(x.shape)}.")
        return mlp_levels(self.blocks, x)  # {level: (B, hidden)}, "final": (B, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_levels(x)["final"]


def gaussian_noise(std: float = 0.1):
    if std < 0:
        raise RecipeError(f"std must be ≥ 0, got {std}.")

    def apply(raw: Tensor, generator: torch.Generator) -> Tensor:
        return raw + std * torch.randn(raw.shape, generator=generator)

    def batch(raws: list[Tensor], generators) -> list[Tensor]:
        """``apply`` on each raw with its generator, bit for bit, in three tensor ops instead of 2·B: each sample's
        noise is still drawn from its own generator (so it does not depend on the batch), then added at once."""
        try:
            stacked = torch.stack(raws)  # (B, F)
        except RuntimeError:  # vectors of different lengths: one at a time
            return [apply(r, g) for r, g in zip(raws, generators)]
        noise = torch.stack([torch.randn(r.shape, generator=g) for r, g in zip(raws, generators)])  # (B, F)
        return list((stacked + std * noise).unbind(0))

    apply.batch = batch
    return apply


class SyntheticPairs(ZooDataset):
    """Synthetic: ``x = c_k + noise``, ``y = W x + noise`` for class k; two aligned views and a label."""

    fields = {"x": "vector", "y": "vector"}
    label_fields = ["class"]
    loaded_fields = frozenset(fields)  # rows of float32 (N, F) tensors: what load_vector returns
    description = "synthetic paired vectors (for tests and the quickstart); not real data"
    source = "generated by zoo.data.vector"
    license = "CC0"

    def __init__(self, split: str = "train", size: int = 512, dim: int = 16, classes: int = 8,
                 noise: float = 0.3, seed: int = 0):
        if split not in ("train", "test"):
            raise DataError(f"synthetic-pairs has splits 'train' and 'test', not {split!r}.")
        g = torch.Generator().manual_seed(seed)
        centroids, w = torch.randn(classes, dim, generator=g), torch.randn(dim, dim, generator=g) / dim ** 0.5
        g.manual_seed(seed + (1 if split == "train" else 2))
        self.labels = torch.randint(classes, (size,), generator=g)
        self.x = centroids[self.labels] + noise * torch.randn(size, dim, generator=g)   # (N, F)
        self.y = self.x @ w.T + noise * torch.randn(size, dim, generator=g)              # (N, F)
        self.split, self.class_names = split, [f"class {k}" for k in range(classes)]

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": self.x[i], "y": self.y[i], "class": int(self.labels[i])}


class SyntheticHierarchy(ZooDataset):
    """Synthetic: nested groups (e.g. patient > trial > sample, or kingdom > … > species).

    Each level splits every group of the level above into ``branching`` groups; a row's latent
    is the sum of its groups' centroids (coarser levels weigh more) plus noise, and each field
    is its own noisy linear view of the latent. Every level is a label field of group ids.
    """

    description = "synthetic nested groups with one label per level (for hierarchical objectives); not real data"
    source = "generated by zoo.data.vector"
    license = "CC0"

    def __init__(self, split: str = "train", levels: list[str] = ("patient", "trial", "sample"),
                 fields: list[str] = ("x", "y"), branching: int = 3, size: int = 512, dim: int = 16,
                 noise: float = 0.2, seed: int = 0):
        if split not in ("train", "test"):
            raise DataError(f"synthetic-hierarchy has splits 'train' and 'test', not {split!r}.")
        if not levels or branching < 1:
            raise DataError("synthetic-hierarchy needs at least one level and branching ≥ 1.")
        g = torch.Generator().manual_seed(seed)
        self.fields = {f: "vector" for f in fields}
        self.label_fields = list(levels)
        maps = [torch.randn(dim, dim, generator=g) / dim ** 0.5 for _ in fields]
        centroids = [torch.randn(branching ** (i + 1), dim, generator=g) * 0.7 ** i for i in range(len(levels))]
        g.manual_seed(seed + (1 if split == "train" else 2))
        leaf = torch.randint(branching ** len(levels), (size,), generator=g)            # finest group id
        self.labels = {lv: leaf // branching ** (len(levels) - 1 - i) for i, lv in enumerate(levels)}  # (N,) each
        latent = sum(c[self.labels[lv]] for c, lv in zip(centroids, levels))            # (N, F)
        self.data = {f: (latent + noise * torch.randn(size, dim, generator=g)) @ m.T for f, m in zip(fields, maps)}
        self.split, self.size = split, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{f: v[i] for f, v in self.data.items()}, **{lv: int(y[i]) for lv, y in self.labels.items()}}


@hookimpl
def zoo_register_modalities(register):
    register("vector", load=load_vector, collate=collate_vectors, is_single=is_single_vector, description="1-D float vectors (zoo.data.vector)")


@hookimpl
def zoo_register_encoders(register):
    register("vector", "mlp", MLPEncoder, description="MLP over vectors, levels layer1…")


@hookimpl
def zoo_register_augmentations(register):
    register("vector", "gaussian_noise", gaussian_noise, description="additive Gaussian noise")


@hookimpl
def zoo_register_datasets(register):
    register("synthetic-pairs", SyntheticPairs, description=SyntheticPairs.description)
    register("synthetic-hierarchy", SyntheticHierarchy, description=SyntheticHierarchy.description)
