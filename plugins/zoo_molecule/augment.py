"""MolCLR's augmentations (Wang et al. 2022, "Molecular contrastive learning of representations via
graph neural networks"), on featurised molecules; every random choice from the generator.

- ``atom_mask``: ``max(1, ⌊ratio·N⌋)`` random atoms get the mask id in every feature column
  (``featurize.ATOM_MASK_IDS``); ratio 0.25.
- ``bond_delete``: remove ``⌊ratio·M⌋`` of the ``M`` bonds (both directed edges); ratio 0.25.
- ``subgraph_remove``: remove ``⌊ratio·N⌋`` atoms forming a connected region grown breadth-first
  from a random atom, and their bonds (MolCLR masks such atoms; here they are removed, so the view
  is the rest of the molecule); ratio 0.25.
- ``smiles_enumeration``: re-featurise the molecule from a random (non-canonical) SMILES of it —
  a new atom order and a new ``smiles`` string. It starts from ``data.smiles``, so put it *first*
  in an augmentation list: graph edits made before it are lost.

``smiles`` stays that of the whole molecule after the graph edits (it describes the source).
"""
from __future__ import annotations

from typing import Any

import torch

from zoo_graph.augment import Augment, check_ratio, choose, drop_pairs, edge_keys, grow_region, keep_nodes, neighbours

from .featurize import ATOM_MASK_IDS
from .modality import from_mol
from .parse import chem, mol_from_smiles


def atom_mask(ratio: float = 0.25) -> Augment:
    check_ratio("atom_mask", ratio, allow_all=True)

    def apply(data: Any, g: torch.Generator) -> Any:
        n = data.num_nodes
        idx = choose(n, min(n, max(1, int(ratio * n))), g)
        out = data.clone()
        out.x[idx] = torch.tensor(ATOM_MASK_IDS, dtype=out.x.dtype)  # (k, 9) ← mask ids
        return out

    return apply


def bond_delete(ratio: float = 0.25) -> Augment:
    check_ratio("bond_delete", ratio)

    def apply(data: Any, g: torch.Generator) -> Any:
        bonds = len(set(edge_keys(data.edge_index, data.num_nodes)))
        return drop_pairs(data, int(ratio * bonds), g)

    return apply


def subgraph_remove(ratio: float = 0.25) -> Augment:
    check_ratio("subgraph_remove", ratio)

    def apply(data: Any, g: torch.Generator) -> Any:
        n = data.num_nodes
        k = min(int(ratio * n), n - 1)
        gone = grow_region(neighbours(data.edge_index, n), k, g, bfs=True)  # (k,)
        keep = torch.ones(n, dtype=torch.bool)
        keep[gone] = False
        return keep_nodes(data, keep.nonzero().flatten())

    return apply


def smiles_enumeration() -> Augment:
    def apply(data: Any, g: torch.Generator) -> Any:
        seed = int(torch.randint(2**31 - 1, (1,), generator=g))
        mol = mol_from_smiles(data.smiles)
        (smiles,) = chem().MolToRandomSmilesVect(mol, 1, randomSeed=seed)
        return from_mol(mol_from_smiles(smiles), smiles)

    return apply
