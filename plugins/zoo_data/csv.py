"""``csv``: open_clip's CSV / TSV format — one row per sample, one column per field.

    [data]
    dataset = "csv"
    options = { path = "train.csv", fields = { image = "filepath", text = "title" }, sep = "," }

- ``fields``: field → column. A field named like a modality (``image``, ``text``, ``audio``,
  ``molecule``…) is of that modality; otherwise write ``caption = { column = "title",
  modality = "text" }``. Each cell is handed to its modality's ``load``: a cell ending in one of
  the modality's registered file extensions (``.png``, ``.wav``, ``.sdf``…) is a file, relative
  to the CSV file's folder (``file = true`` / ``false`` in the field's table overrides this);
  anything else is the value itself (a caption, a SMILES string).
- ``label``: a column of class names → the label field of that name (ids in sorted order, the same
  in every split); zero-shot prompts from ``prompts`` (default ``["{label}"]``).
- Splits: ``path = "all.csv"`` is split by a seeded ``test_fraction`` (default 0.2, ``seed``);
  ``path = { train = "train.csv", test = "test.csv" }`` gives a file per split.
- ``sep``: ``","`` (``"\\t"`` for a ``.tsv`` file).

A missing column, an empty file, an empty cell or a file that does not exist (in any split) is a
DataError at construction, naming the file, the row, the line and the column; a file that cannot be read is one when
the row is loaded, naming the same.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from zoo.data import ZooDataset, load_value
from zoo.errors import DataError, UnknownNameError
from zoo.plugins import registry

from ._splits import SPLIT_SEED, check_fraction, check_split, limit, prompt_templates, split_indices

NAME = "csv"


class Column:
    """One field: its column, modality and whether its cells are files."""

    def __init__(self, field: str, spec: Any):
        if isinstance(spec, str):
            spec = {"column": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("column"), str):
            raise DataError(f"{NAME}: fields.{field} must be a column name or "
                            f"{{ column = \"…\", modality = \"…\" }}, got {spec!r}.")
        unknown = set(spec) - {"column", "modality", "file"}
        if unknown:
            raise DataError(f"{NAME}: fields.{field} has unknown keys {sorted(unknown)}; "
                            f"valid: column, modality, file.")
        self.field, self.column = field, spec["column"]
        self.modality = spec.get("modality", field)
        modalities = registry().names("modalities")
        if self.modality not in modalities:
            hint = "Install the plugin that provides it." if "modality" in spec else (
                f"Field {field!r} is not a modality: write {field} = {{ column = {self.column!r}, modality = \"…\" }}.")
            raise UnknownNameError("modality", self.modality, modalities, hint=hint,
                                   context=f" (csv field {field!r})")
        self.file = spec.get("file")
        self.extensions = tuple(registry().modality(self.modality).extensions)

    def is_file(self, cell: str) -> bool:
        return self.file if self.file is not None else cell.lower().endswith(self.extensions) and bool(self.extensions)


class CsvDataset(ZooDataset):
    """Rows of a CSV/TSV file (open_clip's format); any modality per column; see the module doc."""

    description = ("open_clip-style CSV/TSV: options path (a file, or {train=…, test=…}), fields {field = column}, "
                   "sep, label, prompts; file cells relative to the CSV; seeded test_fraction split")
    source = "your own files"

    def __init__(self, split: str = "train", path: str | dict = "", fields: dict | None = None, sep: str = "",
                 label: str = "", prompts: list[str] | None = None, test_fraction: float = 0.2,
                 seed: int = SPLIT_SEED, size: int | None = None):
        if not path or not fields:
            raise DataError(f"{NAME}: give options path = \"train.csv\" and fields = {{ image = \"filepath\", "
                            f"text = \"title\" }} (field = column).")
        files = dict(path) if isinstance(path, dict) else {None: path}
        self.columns = [Column(f, spec) for f, spec in fields.items()]
        if label in fields:
            raise DataError(f"{NAME}: label {label!r} is also a field; the label column must be a different one.")
        tables = {s: _read(Path(p), sep, [c.column for c in self.columns] + ([label] if label else []))
                  for s, p in files.items()}
        if None in tables:
            self.split = check_split(NAME, split)
            rows = tables[None]
            keep = limit(split_indices(len(rows), split, check_fraction(NAME, test_fraction), seed), size)
            self.rows = [rows[i] for i in keep.tolist()]
        else:
            self.split = check_split(NAME, split, tuple(files))
            self.rows = tables[split][:size] if size else tables[split]
        self.fields = {c.field: c.modality for c in self.columns}
        if label:
            names = sorted({r.cells[label] for t in tables.values() for r in t}, key=_natural)
            self.label, self.label_fields, self.class_names = label, [label], names
            self.ids = {n: i for i, n in enumerate(names)}
            self.prompts = prompt_templates(NAME, prompts or ["{label}"])
        else:
            self.label, self.label_fields = "", []
        self._check_cells([r for t in tables.values() for r in t])

    def _check_cells(self, rows: list[Row]) -> None:
        """Every field cell non-empty; every file cell an existing file (named with file and line). All
        splits are checked, so a bad test row stops the run before training, not at its first evaluation."""
        problems = []
        for r in rows:
            for c in self.columns:
                cell = r.cells[c.column]
                if not cell.strip():
                    problems.append(f"{r.where(c.column)}: empty cell")
                elif c.is_file(cell) and not r.resolve(cell).is_file():
                    problems.append(f"{r.where(c.column)}: file {cell!r} does not exist ({r.resolve(cell)})")
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise DataError(f"{NAME}: {len(problems)} bad cell(s): " + "; ".join(problems[:5]) + more +
                            ". File paths are relative to the CSV file's folder; fix or remove those rows.")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.rows[i]
        out = {}
        for c in self.columns:
            cell = r.cells[c.column]
            out[c.field] = load_value(c.modality, r.resolve(cell) if c.is_file(cell) else cell, r.where(c.column))
        if self.label:
            out[self.label] = self.ids[r.cells[self.label]]
        return out


class Row:
    __slots__ = ("file", "line", "number", "cells")

    def __init__(self, file: Path, line: int, number: int, cells: dict[str, str]):
        self.file, self.line, self.number, self.cells = file, line, number, cells

    def where(self, column: str) -> str:
        return f"{self.file}, row {self.number} (line {self.line}), column {column!r}"

    def resolve(self, cell: str) -> Path:
        p = Path(os.path.expanduser(cell.strip()))
        return p if p.is_absolute() else self.file.parent / p


def _read(path: Path, sep: str, columns: list[str]) -> list[Row]:
    """The rows of one file, keeping only ``columns`` (each checked against the header)."""
    sep = sep or ("\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=sep)
            header = next(reader, None)
            if not header:
                raise DataError(f"{NAME}: {path} is empty; it needs a header line ({sep.join(columns)}) and rows.")
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(f"{NAME}: {path} has no column(s) {missing}; its header is {header} (sep {sep!r}). "
                                f"Fix options.fields / label, or sep (\"\\t\" for TSV).")
            pos = {c: header.index(c) for c in columns}
            rows = []
            for cells in reader:
                if not any(x.strip() for x in cells):
                    continue  # blank line
                if len(cells) != len(header):
                    raise DataError(f"{NAME}: {path} line {reader.line_num} has {len(cells)} cells, the header "
                                    f"{len(header)}; quote cells that contain {sep!r}.")
                rows.append(Row(path, reader.line_num, len(rows) + 1, {c: cells[j] for c, j in pos.items()}))
    except OSError as exc:
        raise DataError(f"{NAME}: cannot read {path}: {exc.strerror or exc}. Check options.path (relative paths "
                        f"start at {os.getcwd()}).") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"{NAME}: {path} is not a readable UTF-8 CSV ({exc}); check the file and sep.") from exc
    if not rows:
        raise DataError(f"{NAME}: {path} has a header but no rows; add rows or point options.path elsewhere.")
    return rows


def _natural(name: str) -> tuple:
    """Numbers in numeric order ("2" before "10"), then text."""
    return (0, int(name), "") if name.strip().lstrip("-").isdigit() else (1, 0, name)
