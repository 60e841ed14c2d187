"""``pydoc-topics``: sentences of the Python documentation topics that CPython ships.

Source: ``pydoc_data.topics.topics`` (the text behind ``help("assert")`` etc.; part of the
standard library, PSF licence). The splitter, in order (≈1,900 sentences on CPython 3.11;
the count follows the running Python's documentation):

1. each topic (sorted by key) is cut into paragraphs at blank lines;
2. headings (a line underlined with ``*``/``=``/``-``), tables (lines starting with ``+``
   or ``|``) and paragraphs holding ``::=`` (grammar) or ``>>>`` (sessions) are dropped; list
   markers ("1.", "*") and definition-list terms are stripped; lines are joined;
3. a paragraph is cut after ``.``, ``!`` or ``?`` followed by a space and an upper-case
   letter, a quote or a bracket — unless the dot ends an abbreviation ("e.g.");
4. a sentence is kept if it starts with an upper-case letter (or quote/bracket), ends with
   ``.``/``!``/``?``, has 40–300 characters and at least 6 words, and is not code-like
   (at most 8 % of its characters in ``()[]{}=_<>*\\``);
5. duplicates are removed (first occurrence kept).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from zoo.data import ZooDataset

from ._splits import check_split, limit, split_indices

MIN_CHARS, MAX_CHARS, MIN_WORDS, MAX_CODE_FRACTION = 40, 300, 6, 0.08
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "cf.", "vs.", "approx.")
_HEADING = re.compile(r"^[*=\-^~]{3,}$")
_CODE_CHARS = set("()[]{}=_<>*\\")
_LIST_MARKER = re.compile(r"^(?:[*\-•]|\d+\.|\(\d+\))\s+")
_SENTENCE = re.compile(r"^[A-Z\"'(*].*[.!?][\"')]?$")


def paragraphs(text: str) -> list[str]:
    """Prose paragraphs of one topic, each joined into one line (list markers and terms removed)."""
    out = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if not lines or any(_HEADING.match(ln.strip()) or ln.lstrip()[:1] in "+|" for ln in lines):
            continue
        if "::=" in block or ">>>" in block:
            continue
        if len(lines) > 1 and _indent(lines[1]) > _indent(lines[0]) and not lines[0].rstrip().endswith((".", ",")):
            lines = lines[1:]   # a definition-list term above its indented description
        out.append(_LIST_MARKER.sub("", " ".join(ln.strip() for ln in lines)))
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_sentences(paragraph: str) -> list[str]:
    pieces, out = _BOUNDARY.split(paragraph), []
    for piece in pieces:
        if out and out[-1].lower().endswith(_ABBREVIATIONS):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def keep(sentence: str) -> bool:
    if not MIN_CHARS <= len(sentence) <= MAX_CHARS or len(sentence.split()) < MIN_WORDS:
        return False
    if not _SENTENCE.match(sentence):
        return False
    return sum(c in _CODE_CHARS for c in sentence) / len(sentence) <= MAX_CODE_FRACTION


@lru_cache(maxsize=1)
def sentence_topics() -> dict[str, str]:
    """``{sentence: topic key}`` of every kept sentence, deduplicated in topic order: a sentence in
    several topics keeps the first (sorted order)."""
    from pydoc_data.topics import topics
    out: dict[str, str] = {}
    for key in sorted(topics):
        for para in paragraphs(topics[key]):
            for s in split_sentences(para):
                if keep(s):
                    out.setdefault(s, key)
    return out


@lru_cache(maxsize=1)
def pydoc_sentences() -> tuple[str, ...]:
    """Every kept sentence, deduplicated, in topic order."""
    return tuple(sentence_topics())


class PydocTopics(ZooDataset):
    """Sentences of CPython's documentation topics; field ``text``, no labels (text SimCSE)."""

    fields = {"text": "text"}
    description = ("real English sentences from the Python documentation topics that CPython ships "
                   "(pydoc_data.topics); for unsupervised text contrastive learning (SimCSE); 80/20 seeded split")
    source = "CPython's pydoc_data.topics (the Python Language Reference text behind help())"
    license = "PSF License Agreement (Python documentation)"

    def __init__(self, split: str = "train", size: int | None = None):
        self.split = check_split("pydoc-topics", split)
        sentences = pydoc_sentences()
        self.indices = limit(split_indices(len(sentences), split), size)   # (N_split,)
        self.sentences = [sentences[i] for i in self.indices.tolist()]

    def __len__(self) -> int:
        return len(self.sentences)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"text": self.sentences[i]}
