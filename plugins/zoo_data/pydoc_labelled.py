"""``pydoc-topics-labelled``: the ``pydoc-topics`` sentences with the topic each comes from.

Same rows and split as ``pydoc-topics`` (a sentence that occurs in several topics keeps the
first, in sorted topic order, as the dataset's deduplication does). Label ``topic`` is the
topic's id among topics with at least ``min_per_topic`` sentences in the whole data; rows
of smaller topics are dropped (a same-topic retrieval query needs another sentence of its
topic). For same-topic retrieval of sentence embeddings (SimCSE); the label is never trained on.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from .pydoc_topics import PydocTopics, sentence_topics


class PydocTopicsLabelled(PydocTopics):
    """``pydoc-topics`` plus label ``topic`` (``class_names`` are the topic keys)."""

    label_fields = ["topic"]
    description = ("real English sentences of CPython's pydoc_data.topics labelled with their topic "
                   "(for same-topic retrieval); same 80/20 split as pydoc-topics")

    def __init__(self, split: str = "train", size: int | None = None, min_per_topic: int = 5):
        super().__init__(split=split)
        of = sentence_topics()
        counts = Counter(of.values())
        self.class_names = sorted(k for k, n in counts.items() if n >= min_per_topic)
        ids = {k: i for i, k in enumerate(self.class_names)}
        rows = [(j, s, ids[of[s]]) for j, s in zip(self.indices.tolist(), self.sentences) if of[s] in ids]
        rows = rows[:size] if size is not None else rows
        self.indices = torch.tensor([j for j, _, _ in rows], dtype=torch.long)   # (N_split,)
        self.sentences = [s for _, s, _ in rows]
        self.topics = [t for _, _, t in rows]

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"text": self.sentences[i], "topic": self.topics[i]}
