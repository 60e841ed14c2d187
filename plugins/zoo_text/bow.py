"""``text/bow``: a bag of hashed words (and optional character n-grams) that needs no vocab file.

Tokens are lower-cased words (``\\w+``), optionally word bigrams and fastText-style character
n-grams of ``<word>``; each is hashed with CRC-32 (stable across processes and machines, unlike
Python's salted ``hash``) into ``num_buckets - 1`` buckets (bucket 0 is padding). An
``nn.EmbeddingBag`` averages the token embeddings, then an optional MLP maps to ``out_dim``::

    enc = zoo.create_encoder("text", "bow", out_dim=32)
    z = enc(enc.preprocess(["a photo of the number seven", "handwritten 7"]))   # (2, 32)
"""
from __future__ import annotations

import re
import zlib
from typing import Any

import torch
from torch import Tensor, nn

from zoo.checks import check_option, check_sizes
from zoo.errors import OptionError, ShapeError

from .modality import texts_of

_WORD = re.compile(r"\w+", re.UNICODE)


def bucket(token: str, num_buckets: int) -> int:
    """The bucket of one token, in ``1 .. num_buckets - 1`` (0 is padding); stable everywhere."""
    return 1 + zlib.crc32(token.encode("utf-8")) % (num_buckets - 1)


def tokens_of(text: str, char_ngrams: list[int], word_ngrams: int) -> list[str]:
    """Typed tokens of one text: ``w:`` words, ``2:`` word bigrams (``3:``…), ``c:`` character n-grams."""
    words = _WORD.findall(text.lower())
    out = [f"w:{w}" for w in words]
    for n in range(2, word_ngrams + 1):
        out += [f"{n}:" + " ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
    for w in words:
        marked = f"<{w}>"
        for n in char_ngrams:
            out += [f"c:{marked[i:i + n]}" for i in range(len(marked) - n + 1)]
    return out


class BagOfWordsEncoder(nn.Module):
    """Hashed bag of words: ``{"ids": (B, L) long}`` → ``(B, out_dim)``.

    Options: ``num_buckets`` (hash table size), ``embed_dim`` (bag embedding size), ``hidden``
    (0: a single linear map to ``out_dim``; > 0: a GELU MLP with that hidden size), ``char_ngrams``
    (e.g. ``[3, 4]``; empty: words only), ``word_ngrams`` (1: words; 2: also bigrams),
    ``dropout`` (on the bag embedding; makes SimCSE dropout twins differ), ``max_tokens``
    (tokens kept per text).
    """

    def __init__(self, num_buckets: int = 1 << 15, embed_dim: int = 64, out_dim: int = 64, hidden: int = 0,
                 char_ngrams: list[int] | None = None, word_ngrams: int = 1, dropout: float = 0.0,
                 max_tokens: int = 256):
        super().__init__()
        _check_options(num_buckets, embed_dim, out_dim, hidden, char_ngrams or [], word_ngrams, dropout, max_tokens)
        self.num_buckets, self.max_tokens = num_buckets, max_tokens
        self.char_ngrams, self.word_ngrams = list(char_ngrams or []), word_ngrams
        self.bag = nn.EmbeddingBag(num_buckets, embed_dim, mode="mean", padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.head = (nn.Linear(embed_dim, out_dim) if hidden == 0 else
                     nn.Sequential(nn.Linear(embed_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim)))
        self.output_dim = out_dim

    def preprocess(self, raws: list[Any]) -> dict[str, Tensor]:
        """Texts → ``{"ids": (B, L) long}``, right-padded with 0; deterministic."""
        rows = [[bucket(t, self.num_buckets) for t in tokens_of(s, self.char_ngrams, self.word_ngrams)]
                [:self.max_tokens] for s in texts_of(raws)]
        ids = torch.zeros(len(rows), max([len(r) for r in rows], default=0) or 1, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        return {"ids": ids}  # (B, L)

    def preprocess_config(self) -> dict[str, Any]:
        return {"tokenizer": "crc32 hashed words", "num_buckets": self.num_buckets,
                "char_ngrams": self.char_ngrams, "word_ngrams": self.word_ngrams, "max_tokens": self.max_tokens}

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        ids = batch["ids"] if isinstance(batch, dict) else batch
        if ids.dim() != 2:
            raise ShapeError(f"bow encoder: expected ids of shape (B, L), got {tuple(ids.shape)}; "
                             f"use the encoder's preprocess(list_of_strings).")
        return self.head(self.dropout(self.bag(ids)))  # (B, L) -> (B, E) -> (B, out_dim)


def _check_options(num_buckets, embed_dim, out_dim, hidden, char_ngrams, word_ngrams, dropout, max_tokens):
    check_option("num_buckets", num_buckets, low=2, integer=True, who="bow", hint="bucket 0 is padding")
    check_sizes("bow", embed_dim=embed_dim, out_dim=out_dim, max_tokens=max_tokens, word_ngrams=word_ngrams,
                dropout=dropout)
    check_option("hidden", hidden, low=0, integer=True, who="bow", hint="0 means no hidden layer")
    if isinstance(char_ngrams, (str, bytes)) or not hasattr(char_ngrams, "__iter__"):
        raise OptionError("char_ngrams", f"bow: char_ngrams must be a list of n-gram lengths (e.g. [3, 4]), "
                                         f"got {char_ngrams!r}.")
    for n in char_ngrams:
        check_option("char_ngrams", n, low=1, integer=True, who="bow", hint="n-gram lengths, e.g. [3, 4]")
