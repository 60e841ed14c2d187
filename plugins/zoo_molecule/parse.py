"""Text and files → rdkit ``Mol``, with rdkit's complaint turned into a :class:`DataError`.

Whatever the input, the only exception that leaves this module is ``DataError``: rdkit's
error log is captured while it parses and its message (and the 1-based position it points
at, or the position of the atom it names) goes into the error.
"""
from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo.errors import DataError
from zoo_graph._pyg import require

MOL_FILE_SUFFIXES = (".sdf", ".mol")
_STAMP = re.compile(r"^\[\d\d:\d\d:\d\d\] ?")
# one SMILES atom: a bracket atom, a two-letter organic-subset element, a one-letter one, or '*'
_ATOM = re.compile(r"\[[^\]]*\]|Br|Cl|[BCNOPSFI]|[bcnops]|\*")


def chem() -> Any:
    return require("rdkit.Chem", "molecule")


@contextmanager
def rdkit_log() -> Iterator[list[str]]:
    """Collect rdkit's error-log lines (timestamps stripped) instead of printing them."""
    rdBase = require("rdkit.rdBase", "molecule")
    lines: list[str] = []
    if hasattr(rdBase, "CaptureErrorLog"):
        with rdBase.BlockLogs(), rdBase.CaptureErrorLog() as capture:  # other channels silenced
            yield lines
        text = capture.messages
    else:  # older rdkit: route the C++ log through Python's sys.stderr and swap that
        rdBase.LogToPythonStderr()
        saved, sys.stderr = sys.stderr, io.StringIO()
        try:
            yield lines
        finally:
            text, sys.stderr = sys.stderr.getvalue(), saved
    lines.extend(_STAMP.sub("", ln).rstrip() for ln in text.splitlines() if ln.strip())


def atom_position(smiles: str, atom: int) -> int | None:
    """The 1-based position in ``smiles`` where atom number ``atom`` (0-based) is written."""
    for i, m in enumerate(_ATOM.finditer(smiles)):
        if i == atom:
            return m.start() + 1
    return None


def explain(smiles: str, lines: list[str]) -> str:
    """The DataError message for a SMILES that rdkit refused."""
    reasons = [ln.removeprefix("SMILES Parse Error: ") for ln in lines
               if "check for mistakes" not in ln and not set(ln) <= {"~", "^", " "} and ln != smiles]
    reason = reasons[0] if reasons else "rdkit could not read it"
    found = re.search(r"position (\d+)", " ".join(lines))
    pos = int(found.group(1)) if found else None
    atom = re.search(r"atom # ?(\d+)|Unkekulized atoms: (\d+)", reason)
    if pos is None and atom:
        pos = atom_position(smiles, int(atom.group(1) or atom.group(2)))
    fix = "Fix the SMILES there (brackets, ring-closure digits, valences, aromatic rings)."
    if pos is None:
        return f"invalid SMILES {smiles!r} (rdkit: {reason}). {fix}"
    return (f"invalid SMILES {smiles!r} at position {pos} (rdkit: {reason}):\n"
            f"    {smiles}\n    {' ' * (pos - 1)}^\n{fix}")


def mol_from_smiles(smiles: str) -> Any:
    """A sanitised ``Mol`` (explicit hydrogens removed) or a DataError naming the string and position."""
    if not smiles.strip():
        raise DataError("invalid SMILES '': the string is empty. Give a molecule such as 'CCO'.")
    try:
        with rdkit_log() as lines:
            mol = chem().MolFromSmiles(smiles)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - rdkit raises various types (Boost conversions, C++ errors)
        raise DataError(f"invalid SMILES {smiles!r}: rdkit failed on it ({type(exc).__name__}: {exc}).") from exc
    if mol is None:
        raise DataError(explain(smiles, lines))
    return mol


def mol_from_block(text: str, where: str = "MOL block") -> Any:
    """The first molecule of MOL/SDF block text."""
    block = text.split("$$$$", 1)[0]
    try:
        with rdkit_log() as lines:
            mol = chem().MolFromMolBlock(block)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read the {where} ({type(exc).__name__}: {exc}); "
                        f"check its atom and bond blocks.") from exc
    if mol is None:
        detail = "; ".join(lines) or "no molecule found"
        raise DataError(f"cannot read the {where} (rdkit: {detail}). Check that it is a V2000/V3000 MOL block "
                        f"ending in 'M  END'.")
    return mol


def mol_from_file(path: Path) -> Any:
    """The first molecule of an ``.sdf`` / ``.mol`` file."""
    if not path.is_file():
        raise DataError(f"molecule file {str(path)!r} does not exist; check the path.")
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"cannot read molecule file {str(path)!r}: {exc.strerror or exc}.") from exc
    return mol_from_block(text, where=f"molecule file {str(path)!r}")


def looks_like_path(text: str) -> bool:
    return "\n" not in text and text.strip().lower().endswith(MOL_FILE_SUFFIXES)


def mol_from_text(text: str) -> tuple[Any, str]:
    """SMILES, MOL/SDF block text or a ``.sdf``/``.mol`` path → ``(Mol, smiles to keep)``."""
    stripped = text.strip()
    if looks_like_path(stripped):
        mol = mol_from_file(Path(stripped))
    elif "\n" in stripped:
        mol = mol_from_block(text)
    else:
        return mol_from_smiles(stripped), stripped.split()[0]
    return mol, chem().MolToSmiles(mol)
