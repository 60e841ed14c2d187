"""Molecules → graphs with OGB-style integer features (Hu et al. 2020, "Open Graph Benchmark").

Atom features ``x (N, 9)``, one column each, value = index in the column's vocabulary (values
outside it map to the last, "misc", entry where the column has one):

====  =====================  ==================================================  ====
col   feature                vocabulary                                          size
====  =====================  ==================================================  ====
0     atomic number          1…118, misc                                         119
1     chirality tag          unspecified, CW, CCW, other, misc                     5
2     degree (with Hs)       0…10, misc                                           12
3     formal charge          −5…5, misc                                           12
4     number of Hs           0…8, misc                                            10
5     radical electrons      0…4, misc                                             6
6     hybridisation          SP, SP2, SP3, SP3D, SP3D2, misc                       6
7     aromatic               no, yes                                               2
8     in a ring              no, yes                                               2
====  =====================  ==================================================  ====

Bond features ``edge_attr (E, 3)``: type (single, double, triple, aromatic, misc: 5), stereo
(none, Z, E, cis, trans, any: 6) and conjugated (2). Each bond gives two directed edges, ``2b``
(begin → end) and ``2b+1`` (end → begin). ``ATOM_DIMS`` / ``BOND_DIMS`` are the sizes; the
augmentation ``atom_mask`` writes the *mask id* ``ATOM_DIMS[c]`` into every column ``c``, so
embedding tables have ``size + 1`` rows. Implemented here from the published vocabulary.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from zoo_graph._pyg import require

_MISC = object()
ATOM_VOCAB: list[tuple[str, list[Any]]] = [
    ("atomic_num", [*range(1, 119), _MISC]),
    ("chirality", ["CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER", _MISC]),
    ("degree", [*range(11), _MISC]),
    ("formal_charge", [*range(-5, 6), _MISC]),
    ("num_hs", [*range(9), _MISC]),
    ("radical_electrons", [*range(5), _MISC]),
    ("hybridization", ["SP", "SP2", "SP3", "SP3D", "SP3D2", _MISC]),
    ("aromatic", [False, True]),
    ("in_ring", [False, True]),
]
BOND_VOCAB: list[tuple[str, list[Any]]] = [
    ("bond_type", ["SINGLE", "DOUBLE", "TRIPLE", "AROMATIC", _MISC]),
    ("stereo", ["STEREONONE", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS", "STEREOANY"]),
    ("conjugated", [False, True]),
]
ATOM_DIMS: list[int] = [len(v) for _, v in ATOM_VOCAB]  # [119, 5, 12, 12, 10, 6, 6, 2, 2]
BOND_DIMS: list[int] = [len(v) for _, v in BOND_VOCAB]  # [5, 6, 2]
ATOM_MASK_IDS: list[int] = list(ATOM_DIMS)              # the mask token of each atom column
_INDEX = [{v: i for i, v in enumerate(vocab) if v is not _MISC} for _, vocab in ATOM_VOCAB + BOND_VOCAB]


def _ids(values: Sequence[Any], tables: list[dict[Any, int]], dims: list[int]) -> list[int]:
    """Each value's index in its column's vocabulary; unknown values → the last entry."""
    return [table.get(v, dim - 1) for v, table, dim in zip(values, tables, dims)]


def atom_features(atom: Any) -> list[int]:
    values = (atom.GetAtomicNum(), str(atom.GetChiralTag()), atom.GetTotalDegree(), atom.GetFormalCharge(),
              atom.GetTotalNumHs(), atom.GetNumRadicalElectrons(), str(atom.GetHybridization()),
              atom.GetIsAromatic(), atom.IsInRing())
    return _ids(values, _INDEX[:9], ATOM_DIMS)


def bond_features(bond: Any) -> list[int]:
    values = (str(bond.GetBondType()), str(bond.GetStereo()), bond.GetIsConjugated())
    return _ids(values, _INDEX[9:], BOND_DIMS)


def mol_to_data(mol: Any, smiles: str) -> Any:
    """A sanitised rdkit ``Mol`` → ``Data(x (N, 9), edge_index (2, E), edge_attr (E, 3), smiles)``."""
    Data = require("torch_geometric.data", "molecule").Data
    x = torch.tensor([atom_features(a) for a in mol.GetAtoms()], dtype=torch.long).view(-1, 9)  # (N, 9)
    edges, attrs = [], []
    for bond in mol.GetBonds():
        u, v, f = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), bond_features(bond)
        edges += [(u, v), (v, u)]
        attrs += [f, f]
    edge_index = torch.tensor(edges, dtype=torch.long).view(-1, 2).t().contiguous()  # (2, E)
    edge_attr = torch.tensor(attrs, dtype=torch.long).view(-1, 3)  # (E, 3)
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr, smiles=smiles, num_nodes=x.shape[0])
