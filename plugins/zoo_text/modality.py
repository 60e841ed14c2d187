"""The ``text`` modality: a raw is a ``str``; a batch is a ``list[str]``.

Encoders tokenise in their own ``preprocess`` (each has its tokenizer), so the modality's
collate only checks and lists the strings.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.errors import DataError


def load_text(value: Any) -> str:
    """``str`` → itself; ``bytes`` → UTF-8 text; ``pathlib.Path`` → the file's UTF-8 text.

    A plain ``str`` is always the text itself, never a file name (so ``load`` is idempotent);
    pass ``Path("notes.txt")`` to read a file.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _decode(bytes(value), "bytes")
    if isinstance(value, os.PathLike):
        return _read(Path(value))
    raise DataError(f"text modality: expected a str (or bytes, or a pathlib.Path to a UTF-8 file), got "
                    f"{type(value).__name__}. Convert the value to a string first.")


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"text modality: {what} is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                        f"decode it with its real encoding and pass a str.") from exc


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"text modality: cannot read {path}: {exc.strerror or exc}. Check the path.") from exc
    return _decode(data, f"file {path}")


def is_single_text(value: Any) -> bool:
    """One text (``str``, bytes or a ``Path``), not a list of them: ``encode("text", "a dog")`` gives ``(D,)``."""
    return isinstance(value, (str, bytes, bytearray, memoryview, os.PathLike))


def text_length(raw: str) -> int:
    """Characters of a loaded text: ``encode`` sorts by it so that a batch pads to similar lengths."""
    return len(raw)


def collate_text(raws: list[Any]) -> list[str]:
    """``list[str]`` (checked): tokenisation belongs to the encoder's ``preprocess``."""
    bad = [i for i, r in enumerate(raws) if not isinstance(r, str)]
    if bad:
        raise DataError(f"text modality: collate expects strings, item {bad[0]} is {type(raws[bad[0]]).__name__}; "
                        f"pass raws through the modality's load first.")
    return list(raws)


def texts_of(raws: list[Any]) -> list[str]:
    """What encoders' ``preprocess`` tokenise: every input through ``load_text`` (a no-op for str)."""
    return [load_text(r) for r in raws]


def render_text(value: Any) -> tuple[str, bytes]:
    """Text → ``("text/plain; charset=utf-8", UTF-8 bytes)`` for a web page."""
    return "text/plain; charset=utf-8", load_text(value).encode("utf-8")
