"""``folder``: torchvision's ImageFolder layout, for any modality whose loader reads the files.

    root/<class>/<file>                       split by a seeded test_fraction (per class)
    root/train/<class>/<file>, root/test/…    a folder per split (every subfolder of root is one)

    [data]
    dataset = "folder"
    options = { root = "pets", template = "a photo of a {label}" }

A file's modality comes from its extension through the modality registry (``.png`` → image,
``.wav`` → audio…); ``modality = "…"`` picks one when a folder mixes them. Files no modality
reads (and hidden files) are skipped. Items: ``{<modality>: raw, "caption": template with the
class name, "class": id}``; class names are the folder names with ``_`` read as a space, in
sorted order (the same ids in every split); zero-shot prompts are ``prompts`` (default: the
template). ``template = ""`` drops the caption field.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from zoo.data import ZooDataset, file_extensions, load_value
from zoo.errors import DataError
from zoo.plugins import registry

from ._splits import SPLIT_SEED, check_fraction, check_split, prompt_templates, split_indices

NAME = "folder"
log = logging.getLogger("zoo.data")


class FolderDataset(ZooDataset):
    """Files under ``root/<class>/`` (or ``root/<split>/<class>/``); see the module doc."""

    description = ("ImageFolder layout root/<class>/<file> (or root/train|test/<class>/) for any modality chosen by "
                   "file extension; captions from template = \"a photo of a {label}\"; zero-shot from class names")
    source = "your own files"

    def __init__(self, split: str = "train", root: str = "", template: str = "{label}",
                 prompts: list[str] | None = None, modality: str = "", test_fraction: float = 0.2,
                 seed: int = SPLIT_SEED, size: int | None = None):
        base = Path(root)
        if not root or not base.is_dir():
            raise DataError(f"{NAME}: options.root = {root!r} is not a folder; give the folder that holds one "
                            f"subfolder per class (relative paths start at {Path.cwd()}).")
        subdirs = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        by_folder = "train" in subdirs and "test" in subdirs
        split_roots = {s: base / s for s in subdirs} if by_folder else {None: base}
        self.split = check_split(NAME, split, tuple(subdirs) if by_folder else ("train", "test"))
        folders = sorted({p.name for r in split_roots.values() for p in r.iterdir()
                          if p.is_dir() and not p.name.startswith(".")})
        if not folders:
            raise DataError(f"{NAME}: {base} has no class subfolders; lay the files out as {base}/<class>/<file>.")
        self.folder_names = folders
        self.class_names = [f.replace("_", " ") for f in folders]
        files = _class_files(split_roots[split if by_folder else None], folders)
        self.modality = _pick_modality(base, [f for f, _ in files], modality)
        files = [(f, c) for f, c in files if _reads(f, self.modality)]
        if not by_folder:
            check_fraction(NAME, test_fraction)
            per_class: dict[int, list[tuple[Path, int]]] = {}
            for fc in files:
                per_class.setdefault(fc[1], []).append(fc)
            files = [fc for c, mine in sorted(per_class.items())
                     for fc in _split_class(mine, c, split, test_fraction, seed)]
        self.files = files[:size] if size else files
        if not self.files:
            raise DataError(f"{NAME}: split {split!r} of {base} holds no {self.modality} files.")
        self.fields = {self.modality: self.modality}
        self.label_fields = ["class"]
        self.template = template
        if template:
            prompt_templates(NAME, [template])   # checks the {label}
            if "text" not in registry().names("modalities"):
                raise DataError(f"{NAME}: captions need the text modality (pip install zoo[text]); "
                                f"or set template = \"\".")
            self.fields["caption"] = "text"
        self.prompts = prompt_templates(NAME, prompts or [template or "{label}"])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, c = self.files[i]
        out = {self.modality: load_value(self.modality, path, f"{path} (row {i} of split {self.split!r})"), "class": c}
        if self.template:
            out["caption"] = self.template.replace("{label}", self.class_names[c])
        return out


def _class_files(root: Path, folders: list[str]) -> list[tuple[Path, int]]:
    """``(file, class id)`` for every non-hidden file under ``root/<class>/``, sorted."""
    out = []
    for c, name in enumerate(folders):
        d = root / name
        if d.is_dir():
            out += [(p, c) for p in sorted(d.rglob("*")) if p.is_file() and not _hidden(p.relative_to(d))]
    return out


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _pick_modality(base: Path, files: list[Path], modality: str) -> str:
    if modality:
        registry().get("modalities", modality)
        return modality
    exts = file_extensions()
    found = Counter(exts[f.suffix.lower()] for f in files if f.suffix.lower() in exts)
    skipped = Counter(f.suffix.lower() or "(none)" for f in files if f.suffix.lower() not in exts)
    if not found:
        raise DataError(f"{NAME}: no file under {base} has an extension a modality reads "
                        f"(found {dict(skipped) or 'no files'}; readable: {', '.join(sorted(exts))}). "
                        f"Set modality = \"…\" to read them anyway.")
    if len(found) > 1:
        raise DataError(f"{NAME}: {base} mixes files of several modalities {dict(found)}; set modality = \"…\".")
    if skipped:
        log.warning("%s: skipped %d file(s) under %s that no modality reads: %s", NAME, sum(skipped.values()), base,
                    dict(skipped))
    return next(iter(found))


def _reads(path: Path, modality: str) -> bool:
    """Whether ``path`` belongs to ``modality`` (any file, when the modality registered no extensions)."""
    exts = registry().modality(modality).extensions
    return not exts or path.suffix.lower() in exts


def _split_class(mine: list[tuple[Path, int]], c: int, split: str, fraction: float, seed: int):
    """One class's files of ``split``: a seeded fraction per class, so every class is in both splits."""
    if len(mine) < 2:
        return mine if split == "train" else []
    return [mine[i] for i in split_indices(len(mine), split, fraction, seed + c).tolist()]
