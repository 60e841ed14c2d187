"""The ``molecule`` modality: a raw is a featurised ``Data`` (see :mod:`.featurize`); a batch a ``Batch``.

``load`` accepts a SMILES string, MOL/SDF block text, a path to an ``.sdf``/``.mol`` file (its
first molecule), an rdkit ``Mol``, or an already featurised ``Data`` (validated and returned
as is — ``load`` is idempotent, and augmented views, whose masked atoms carry the mask ids,
load again unchanged). Unreadable input raises :class:`zoo.errors.DataError` and nothing else.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from zoo.errors import DataError, ShapeError
from zoo_graph._pyg import require
from zoo_graph.modality import check_edges, collate_graphs

from .featurize import ATOM_DIMS, BOND_DIMS, mol_to_data
from .parse import chem, mol_from_file, mol_from_text


def _check_ids(name: str, t: Any, dims: list[int], rows: str) -> None:
    """An integer ``(rows, len(dims))`` tensor with column ``c`` in ``[0, dims[c]]`` (the top id is the mask)."""
    width = len(dims)
    if not isinstance(t, Tensor) or t.dim() != 2 or t.shape[1] != width or t.is_floating_point():
        got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
        raise ShapeError(f"molecule modality: expected {name} of shape ({rows}, {width}) with integer feature ids, "
                         f"got {got}. Build molecules with zoo's molecule load (a SMILES string or an rdkit Mol).")
    if t.numel():
        low, high = t.amin(dim=0).tolist(), t.amax(dim=0).tolist()
        bad = [c for c in range(width) if low[c] < 0 or high[c] > dims[c]]
        if bad:
            c = bad[0]
            raise ShapeError(f"molecule modality: expected {name} column {c} in [0, {dims[c]}], got values from "
                             f"{low[c]} to {high[c]}. The features are not zoo's OGB-style ids.")


def check_molecule(data: Any) -> Any:
    """Validate a featurised molecule (``x (N, 9)``, ``edge_attr (E, 3)``, ``smiles``); returns it."""
    _check_ids("x", getattr(data, "x", None), ATOM_DIMS, "N")
    check_edges("molecule modality", data, data.x.shape[0])
    _check_ids("edge_attr", getattr(data, "edge_attr", None), BOND_DIMS, "E")
    if not isinstance(getattr(data, "smiles", None), str):
        raise DataError("molecule modality: a featurised Data needs its 'smiles' string (fingerprint encoders and "
                        "smiles_enumeration read it); load the molecule from its SMILES instead.")
    return data


def from_mol(mol: Any, smiles: str | None = None) -> Any:
    """An rdkit ``Mol`` (sanitised on a copy) → featurised ``Data``."""
    Chem = chem()
    try:
        mol = Chem.Mol(mol)
        Chem.SanitizeMol(mol)
        smiles = smiles or Chem.MolToSmiles(mol)
    except Exception as exc:  # noqa: BLE001 - rdkit's sanitisation errors have many types
        raise DataError(f"cannot use this rdkit Mol: rdkit cannot sanitise it ({type(exc).__name__}: {exc}). "
                        f"Fix its valences or charges.") from exc
    if mol.GetNumAtoms() == 0:
        raise DataError(f"molecule {smiles!r} has no atoms; give a molecule such as 'CCO'.")
    return mol_to_data(mol, smiles)


def load_molecule(value: Any) -> Any:
    """SMILES / MOL block / ``.sdf`` path / ``Mol`` / featurised ``Data`` → featurised ``Data``."""
    if isinstance(value, require("torch_geometric.data", "molecule").Data):
        return check_molecule(value)
    if isinstance(value, str):
        return from_mol(*mol_from_text(value))
    if isinstance(value, Path):
        mol = mol_from_file(value)
        return from_mol(mol)
    if isinstance(value, chem().Mol):
        return from_mol(value)
    raise DataError(f"molecule modality: cannot read a {type(value).__name__}; give a SMILES string, MOL/SDF text, "
                    f"a path to an .sdf/.mol file, an rdkit Mol or a featurised torch_geometric Data.")


def is_single_molecule(value: Any) -> bool:
    """One molecule: a SMILES / MOL string, a ``Path``, an rdkit ``Mol`` or a featurised ``Data`` (not a ``Batch``)."""
    if isinstance(value, (str, Path)) or type(value).__module__.startswith("rdkit"):
        return True
    if type(value).__module__.startswith("torch_geometric"):
        return not isinstance(value, require("torch_geometric.data", "molecule").Batch)
    return False


collate_molecules = collate_graphs  # Batch.from_data_list; batch.smiles is the list of SMILES


def render_molecule(value: Any, size: tuple[int, int] = (240, 180)) -> tuple[str, bytes]:
    """A molecule (anything :func:`load_molecule` reads) → ``("image/svg+xml", a 2-D drawing)`` via rdkit."""
    from rdkit.Chem.Draw import rdMolDraw2D
    smiles = getattr(load_molecule(value), "smiles", None)
    mol = chem().MolFromSmiles(smiles) if smiles else None
    if mol is None:
        raise DataError(f"cannot draw molecule {smiles!r}: rdkit does not parse its SMILES.")
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    drawer.drawOptions().clearBackground = False
    drawer.DrawMolecule(mol)
    drawer.FinishDrawing()
    return "image/svg+xml", drawer.GetDrawingText().encode("utf-8")
