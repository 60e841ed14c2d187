"""Real molecules that the rdkit wheel ships, as SMILES strings (the molecule modality featurises them).

- ``molecules-nci5k``: ``RDDataDir/NCI/first_5K.smi`` — the first 4,999 structures of the NCI
  open database (one ``SMILES<TAB>id`` a line) — with the float target ``tpsa`` (topological
  polar surface area, Å², computed by Daylight tools) from ``first_5k.tpsa.csv`` in the same
  folder (a ``#`` comment line, then ``SMILES,tpsa`` rows in the same order). The 8 SMILES
  that rdkit cannot parse (hypervalent Hg/Al/Si/O) are dropped: 4,991 molecules.
- ``chembl-2321810``: ``RDContribDir/FreeWilson/data`` — the 1,017 compounds of ChEMBL assay
  CHEMBL2321810 (``CHEMBL2321810.smi``: ``SMILES id``) joined on id with their measured
  activity (``CHEMBL2321810_act.csv``: ``Name,Act``; log-scale potency, 4.27–9.22), as the
  float target ``activity``.
- ``molecule-captions``: the nci5k molecules with a caption generated from rdkit descriptors
  (:func:`describe`) — synthetic captions of real molecules.

Float targets are not ``label_fields`` (those are integer ids): each item carries them by
name and the dataset's ``targets`` dict maps the name to a ``(N,)`` float tensor.
"""
from __future__ import annotations

import abc
import csv
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from zoo.checks import require
from zoo.data import ZooDataset
from zoo.errors import DataError

from ._splits import check_split, limit, split_indices
from .captions import describe

RDKIT_LICENSE = "shipped in rdkit (BSD-3-Clause)"


def rdkit_file(kind: str, *parts: str) -> Path:
    """A data file of the installed rdkit: under ``RDConfig.RDDataDir``/``RDContribDir``, else searched."""
    rdkit = require("rdkit", "molecule", "the molecule datasets")
    config = require("rdkit.RDConfig", "molecule", "the molecule datasets")
    base = Path(config.RDDataDir if kind == "data" else config.RDContribDir)
    path = base.joinpath(*parts)
    if path.is_file():
        return path
    found = sorted(Path(rdkit.__file__).parent.rglob(parts[-1]))
    if found:
        return found[0]
    raise DataError(f"rdkit {rdkit.__version__} ships no {'/'.join(parts)} (looked in {base} and the whole "
                    f"rdkit package); install an rdkit wheel that carries it (`pip install -U rdkit`).")


def parses(smiles: str) -> bool:
    from rdkit import Chem, rdBase
    with rdBase.BlockLogs():
        return Chem.MolFromSmiles(smiles) is not None


@lru_cache(maxsize=1)
def nci5k_rows() -> tuple[list[int], list[str], list[float]]:
    """(file row, SMILES, TPSA) of every parsable molecule of first_5K.smi, in file order."""
    smi_path = rdkit_file("data", "NCI", "first_5K.smi")
    smiles = [line.split()[0] for line in smi_path.read_text().splitlines() if line.strip()]
    tpsa_rows = [line.rsplit(",", 1) for line in (smi_path.parent / "first_5k.tpsa.csv").read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
    if len(tpsa_rows) != len(smiles) or any(s != r[0] for s, r in zip(smiles, tpsa_rows)):
        raise DataError(f"{smi_path.parent}: first_5K.smi and first_5k.tpsa.csv do not list the same molecules.")
    keep = [i for i, s in enumerate(smiles) if parses(s)]
    return keep, [smiles[i] for i in keep], [float(tpsa_rows[i][1]) for i in keep]


@lru_cache(maxsize=1)
def chembl_rows() -> tuple[list[str], list[str], list[float]]:
    """(ChEMBL compound id, SMILES, activity) of the 1,017 FreeWilson example compounds, in file order."""
    smi_path = rdkit_file("contrib", "FreeWilson", "data", "CHEMBL2321810.smi")
    with open(smi_path.parent / "CHEMBL2321810_act.csv", newline="") as fh:
        activity = {row["Name"]: float(row["Act"]) for row in csv.DictReader(fh)}
    pairs = [line.split() for line in smi_path.read_text().splitlines() if line.strip()]
    missing = [name for _, name in pairs if name not in activity]
    if missing:
        raise DataError(f"{smi_path}: no activity for {len(missing)} compounds (e.g. {missing[0]}).")
    return [n for _, n in pairs], [s for s, _ in pairs], [activity[n] for _, n in pairs]


class MoleculeDataset(ZooDataset, abc.ABC):
    """A split of (SMILES, float targets) rows; subclasses say where the rows come from (:meth:`rows`)."""

    name = ""
    fields = {"molecule": "molecule"}
    target_name = ""

    def __init__(self, split: str = "train", size: int | None = None):
        self.split = check_split(self.name, split)
        ids, smiles, values = self.rows()
        pos = limit(split_indices(len(smiles), split), size).tolist()
        self.indices = torch.tensor([ids[p] for p in pos], dtype=torch.long)  # (N_split,) rows of the file
        self.smiles = [smiles[p] for p in pos]
        self.targets = {self.target_name: torch.tensor([values[p] for p in pos], dtype=torch.float32)}

    @abc.abstractmethod
    def rows(self) -> tuple[list[int], list[str], list[float]]:
        """(file row, SMILES, target value) of every usable molecule."""

    def __len__(self) -> int:
        return len(self.smiles)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"molecule": self.smiles[i], self.target_name: float(self.targets[self.target_name][i])}

    def baseline_features(self, field: str = "molecule", radius: int = 2, n_bits: int = 2048):
        """Morgan (ECFP4) fingerprint bits of every molecule: the linear-probe baseline."""
        import numpy as np
        Chem = require("rdkit.Chem", "molecule", "Morgan fingerprints")
        from rdkit.Chem import rdFingerprintGenerator
        gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
        feats = np.stack([gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(s)).astype(np.float32) for s in self.smiles])
        return feats, f"Morgan fingerprint r={radius}, {n_bits} bits"


class NCI5k(MoleculeDataset):
    """4,991 real NCI molecules (SMILES) with the float target ``tpsa``; ``indices`` are file rows."""

    name, target_name = "molecules-nci5k", "tpsa"
    description = ("4,991 real molecules of the NCI open database (rdkit's Data/NCI/first_5K.smi) as SMILES, "
                   "float target 'tpsa' (Å², first_5k.tpsa.csv); 80/20 seeded split")
    source = "NCI open database, first 5K structures, as shipped in rdkit (Data/NCI)"
    license = f"public domain (U.S. NCI); {RDKIT_LICENSE}"

    def rows(self):
        return nci5k_rows()


class Chembl2321810(MoleculeDataset):
    """1,017 ChEMBL compounds with measured activity (float target ``activity``); for regression probes."""

    name, target_name = "chembl-2321810", "activity"
    description = ("1,017 real compounds of ChEMBL assay CHEMBL2321810 with measured activity (log-scale potency) "
                   "from rdkit's Contrib/FreeWilson/data; float target 'activity'; 80/20 seeded split")
    source = "ChEMBL assay CHEMBL2321810, as shipped in rdkit (Contrib/FreeWilson/data)"
    license = f"CC BY-SA 3.0 (ChEMBL); {RDKIT_LICENSE}"

    def __init__(self, split: str = "train", size: int | None = None):
        super().__init__(split, size)
        self.chembl_ids = [chembl_rows()[0][i] for i in self.indices.tolist()]

    def rows(self):
        names, smiles, activity = chembl_rows()
        return list(range(len(names))), smiles, activity


class MoleculeCaptions(NCI5k):
    """nci5k molecules + a caption generated from rdkit descriptors (synthetic captions, real molecules)."""

    name = "molecule-captions"
    fields = {"molecule": "molecule", "caption": "text"}
    description = ("the 4,991 real nci5k molecules, each with a caption generated from rdkit descriptors "
                   "('a medium-sized molecule with 1 aromatic ring, 2 nitrogen atoms and a hydroxyl group'); "
                   "the captions are synthetic; float target 'tpsa'; same split as molecules-nci5k")

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**super().__getitem__(i), "caption": describe(self.smiles[i])}

