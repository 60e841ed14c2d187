"""Captions of molecules generated from rdkit descriptors (for ``molecule-captions``).

``describe(smiles)`` writes, deterministically:

    "a <size> molecule with <rings>, <element counts> and <functional groups>"

- size from the heavy-atom count: small (< 12), medium-sized (12–30), large (> 30); a SMILES
  of several fragments is "a mixture of k components" instead;
- rings: "2 aromatic rings", "1 non-aromatic ring" or "no rings";
- heteroatoms: "3 nitrogen atoms", "1 chlorine atom" … (N, O, S, P, halogens, in that order);
- groups found by SMARTS (:data:`GROUPS`): "a hydroxyl group", "2 nitro groups" ….
"""
from __future__ import annotations

from functools import lru_cache

ELEMENTS = [("N", "nitrogen"), ("O", "oxygen"), ("S", "sulfur"), ("P", "phosphorus"),
            ("F", "fluorine"), ("Cl", "chlorine"), ("Br", "bromine"), ("I", "iodine")]

GROUPS = {
    "carboxylic acid": "[CX3](=O)[OX2H1]",
    "hydroxyl": "[OX2H1][#6;!$(C=O)]",
    "amine": "[NX3;H2,H1;!$(N-C=[O,S,N]);!$(N-[a]);!$(N-S(=O)=O)]",
    "amide": "[NX3][CX3](=[OX1])[#6]",
    "nitro": "[$([NX3](=O)=O),$([NX3+](=O)[O-])]",
    "ketone": "[#6][CX3](=O)[#6]",
    "aldehyde": "[CX3H1](=O)[#6]",
    "ester": "[#6][CX3](=O)[OX2H0][#6]",
    "nitrile": "[NX1]#[CX2]",
    "sulfonamide": "[SX4](=O)(=O)[NX3]",
}


@lru_cache(maxsize=1)
def _patterns():
    from rdkit import Chem
    return {name: Chem.MolFromSmarts(smarts) for name, smarts in GROUPS.items()}


def count_phrase(n: int, singular: str) -> str:
    """``"2 nitrogen atoms"``, ``"1 nitrogen atom"``; one group reads ``"a hydroxyl group"``."""
    if n != 1:
        return f"{n} {singular}s"
    if singular.endswith("group"):
        return f"{'an' if singular[0] in 'aeiou' else 'a'} {singular}"
    return f"1 {singular}"


def join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


@lru_cache(maxsize=8192)
def describe(smiles: str) -> str:
    """A one-line English description of a molecule from rdkit descriptors."""
    from rdkit import Chem
    from rdkit.Chem import rdMolDescriptors
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return "an unreadable molecule"
    fragments = len(Chem.GetMolFrags(mol))
    heavy = mol.GetNumHeavyAtoms()
    size = "small" if heavy < 12 else "medium-sized" if heavy <= 30 else "large"
    head = f"a mixture of {fragments} components" if fragments > 1 else f"a {size} molecule"
    aromatic = rdMolDescriptors.CalcNumAromaticRings(mol)
    other = rdMolDescriptors.CalcNumRings(mol) - aromatic
    parts = [count_phrase(aromatic, "aromatic ring")] if aromatic else []
    parts += [count_phrase(other, "non-aromatic ring")] if other else []
    parts = parts or ["no rings"]
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    parts += [count_phrase(symbols.count(sym), f"{name} atom") for sym, name in ELEMENTS if sym in symbols]
    for name, pattern in _patterns().items():
        hits = len(mol.GetSubstructMatches(pattern))
        if hits:
            parts.append(count_phrase(hits, f"{name} group"))
    return f"{head} with {join(parts)}"
