"""The ``molecule`` modality (built-in plugin; ``pip install zoo[molecule]``: rdkit + torch-geometric).

- raw: ``torch_geometric.data.Data`` with OGB-style ``x (N, 9)``, ``edge_attr (E, 3)`` and
  ``smiles`` (:mod:`.featurize`); ``load`` reads SMILES, MOL/SDF text or files, rdkit Mols (:mod:`.modality`);
- encoders ``gin``, ``gine`` (MolCLR) and ``fingerprint_mlp`` (:mod:`.encoders`);
- augmentations ``atom_mask``, ``bond_delete``, ``subgraph_remove``, ``smiles_enumeration`` (MolCLR, :mod:`.augment`).

rdkit and torch-geometric are imported on first use, never here.
"""
from __future__ import annotations

from zoo import hookimpl
from zoo_graph.modality import cast_graphs, count_graphs, slice_graphs

from . import augment, encoders
from .modality import collate_molecules, is_single_molecule, load_molecule, render_molecule


@hookimpl
def zoo_register_modalities(register):
    register("molecule", load=load_molecule, collate=collate_molecules, extra="molecule", is_single=is_single_molecule,
             render=render_molecule, count=count_graphs, slice=slice_graphs, cast=cast_graphs,  # batches are PyG Batches
             extensions=(".sdf", ".mol"),
             description="molecules as OGB-featurised graphs (from SMILES, SDF/MOL or rdkit Mol)")


@hookimpl
def zoo_register_encoders(register):
    register("molecule", "gin", encoders.gin, description=encoders.gin.__doc__)
    register("molecule", "gine", encoders.gine, description=encoders.gine.__doc__)
    register("molecule", "fingerprint_mlp", encoders.FingerprintMLP,
             description="Morgan fingerprint of the SMILES → MLP")


@hookimpl
def zoo_register_augmentations(register):
    for make, what in [(augment.atom_mask, "mask 25 % of the atoms with the mask id (MolCLR)"),
                       (augment.bond_delete, "delete 25 % of the bonds (MolCLR)"),
                       (augment.subgraph_remove, "remove a connected 25 % of the atoms (MolCLR)"),
                       (augment.smiles_enumeration, "re-featurise from a random SMILES (new atom order)")]:
        register("molecule", make.__name__, make, description=what)
