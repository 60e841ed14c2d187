"""Molecule encoders.

- ``gin`` / ``gine``: the MolCLR encoders (Wang et al. 2022). Atoms are embedded by summing one
  learned embedding per feature column (each table has a row for the mask id); ``gine`` adds
  learned bond embeddings (one set per layer) to the messages (GINEConv, Hu et al. 2020),
  ``gin`` ignores bonds. Then the shared trunk of :mod:`zoo_graph.nets`: ``layers`` convolutions,
  per-layer readouts (``forward_levels``), ``forward_nodes`` and a head to ``out_dim``.
- ``fingerprint_mlp``: Morgan (ECFP) bit vector of radius ``radius`` and ``n_bits`` bits, computed
  inside ``forward`` from ``batch.smiles`` (cached per SMILES, so each molecule is fingerprinted
  once per encoder), then an MLP. Graph augmentations do not change ``smiles``, so this tower
  sees them as identical views; pair it with dropout or another modality.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn

from zoo.errors import RecipeError, ShapeError
from zoo.layers import mlp_blocks, mlp_levels
from zoo_graph._pyg import require
from zoo_graph.nets import GNNBase, check_sizes, gin_mlp

from .featurize import ATOM_DIMS, BOND_DIMS
from .parse import mol_from_smiles


class FeatureEmbedding(nn.Module):
    """Integer feature ids ``(R, C)`` → ``(R, dim)``: the sum of one embedding per column."""

    def __init__(self, dims: list[int], dim: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(d + 1, dim) for d in dims)  # +1: the mask id
        for t in self.tables:
            nn.init.xavier_uniform_(t.weight)

    def forward(self, ids: Tensor) -> Tensor:
        return sum(t(ids[:, c]) for c, t in enumerate(self.tables))  # (R, dim)


class MoleculeGNN(GNNBase):
    """MolCLR-style GIN / GINE over OGB-style atom and bond ids."""

    def __init__(self, conv: str, *, hidden: int, layers: int, out_dim: int, dropout: float, readout: str,
                 node_level: bool, norm: str):
        check_sizes(layers, hidden, out_dim, dropout)
        pyg = require("torch_geometric.nn", "molecule")
        make = {"gin": lambda: pyg.GINConv(gin_mlp(hidden, hidden), train_eps=True),
                "gine": lambda: pyg.GINEConv(gin_mlp(hidden, hidden), train_eps=True)}[conv]
        super().__init__([make() for _ in range(layers)], hidden=hidden, out_dim=out_dim, dropout=dropout,
                         readout=readout, node_level=node_level, norm=norm)
        self.atoms = FeatureEmbedding(ATOM_DIMS, hidden)
        self.bonds = nn.ModuleList(FeatureEmbedding(BOND_DIMS, hidden) for _ in range(layers)) if conv == "gine" \
            else None

    def node_inputs(self, batch: Any) -> Tensor:
        x = getattr(batch, "x", None)
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != len(ATOM_DIMS) or x.is_floating_point():
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"molecule encoder: expected integer atom features x of shape (N, {len(ATOM_DIMS)}), "
                             f"got {got}. Load molecules with the molecule modality (SMILES → Data).")
        return self.atoms(x)  # (N, hidden)

    def conv_inputs(self, i: int, batch: Any) -> tuple:
        if self.bonds is None:
            return (batch.edge_index,)
        return batch.edge_index, self.bonds[i](batch.edge_attr)  # (2, E), (E, hidden)


def gin(hidden: int = 300, layers: int = 5, out_dim: int = 512, dropout: float = 0.0, readout: str = "mean",
        node_level: bool = False, norm: str = "batch") -> MoleculeGNN:
    """GIN over atom embeddings, bonds ignored (MolCLR's sizes: 5 × 300, mean readout, 512 out)."""
    return MoleculeGNN("gin", hidden=hidden, layers=layers, out_dim=out_dim, dropout=dropout, readout=readout,
                       node_level=node_level, norm=norm)


def gine(hidden: int = 300, layers: int = 5, out_dim: int = 512, dropout: float = 0.0, readout: str = "mean",
         node_level: bool = False, norm: str = "batch") -> MoleculeGNN:
    """GINE with bond embeddings per layer, the MolCLR encoder (5 × 300, mean readout, 512 out)."""
    return MoleculeGNN("gine", hidden=hidden, layers=layers, out_dim=out_dim, dropout=dropout, readout=readout,
                       node_level=node_level, norm=norm)


class FingerprintMLP(nn.Module):
    """Morgan fingerprint of each molecule's SMILES ``(B, n_bits)`` → MLP → ``(B, out_dim)``."""

    CACHE_SIZE = 100_000

    def __init__(self, radius: int = 2, n_bits: int = 2048, hidden: int = 512, layers: int = 2, out_dim: int = 256,
                 dropout: float = 0.0):
        super().__init__()
        check_sizes(layers, hidden, out_dim, dropout)
        if radius < 0 or n_bits < 1:
            raise RecipeError(f"fingerprint_mlp needs radius ≥ 0 and n_bits ≥ 1, got radius={radius}, "
                              f"n_bits={n_bits}.")
        self.radius, self.n_bits, self.output_dim = radius, n_bits, out_dim
        dims = [n_bits] + [hidden] * (layers - 1) + [out_dim]
        self.blocks = mlp_blocks(dims, nn.ReLU, dropout)
        self.level_dims = {f"layer{i + 1}": hidden for i in range(layers - 1)}
        self._cache: OrderedDict[str, Tensor] = OrderedDict()
        self._generator = None

    def fingerprint(self, smiles: str) -> Tensor:
        """The ``(n_bits,)`` 0/1 Morgan fingerprint, from the cache when seen before."""
        fp = self._cache.get(smiles)
        if fp is None:
            if self._generator is None:
                gen = require("rdkit.Chem.rdFingerprintGenerator", "molecule")
                self._generator = gen.GetMorganGenerator(radius=self.radius, fpSize=self.n_bits)
            bits = self._generator.GetFingerprintAsNumPy(mol_from_smiles(smiles))
            fp = torch.from_numpy(bits.astype("float32"))
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.popitem(last=False)
            self._cache[smiles] = fp
        else:
            self._cache.move_to_end(smiles)
        return fp

    def features(self, batch: Any) -> Tensor:
        smiles = batch if isinstance(batch, (list, tuple)) else getattr(batch, "smiles", None)
        if isinstance(smiles, str):  # a lone Data
            smiles = [smiles]
        if not isinstance(smiles, (list, tuple)) or not all(isinstance(s, str) for s in smiles):
            raise ShapeError(f"fingerprint_mlp: expected a molecule batch with .smiles (or a list of SMILES), "
                             f"got a {type(batch).__name__} without them.")
        weight = next(self.parameters())
        return torch.stack([self.fingerprint(s) for s in smiles]).to(weight.device, weight.dtype)  # (B, n_bits)

    def forward_levels(self, batch: Any) -> dict[str, Tensor]:
        return mlp_levels(self.blocks, self.features(batch))  # {level: (B, hidden)}, "final": (B, out_dim)

    def forward(self, batch: Any) -> Tensor:
        return self.forward_levels(batch)["final"]  # (B, out_dim)
