"""zoo's built-in text plugin (``pip install zoo[text]``).

- modality ``text``: a raw is a ``str`` (``load`` also takes UTF-8 bytes or a ``pathlib.Path``);
  a batch is a ``list[str]``, tokenised by each encoder's ``preprocess``.
- encoders: ``bow`` (hashed bag of words, no vocab file), ``hf:<model>`` (transformers, pooling
  cls/mean/last, levels), ``open_clip:<arch>`` (an open_clip text tower).
- augmentations: ``word_deletion`` (= ``word_dropout``), ``word_swap``, ``word_repetition`` (ESimCSE).
- pair strategy ``supervised_simcse`` (anchor / positive / hard-negative fields) and objective
  ``simcse_sup`` (Gao et al. 2021, eq. 5). Unsupervised SimCSE is the core's ``dropout_twins``.

Heavy libraries (transformers, open_clip) are imported only when such an encoder is built.
"""
from __future__ import annotations

from zoo import hookimpl

from . import augment
from .bow import BagOfWordsEncoder
from .hf import build_hf
from .modality import collate_text, is_single_text, load_text, render_text, text_length
from .objectives import SimCSESupervisedLoss
from .openclip import build_open_clip
from .pairs import TextTriplets

__version__ = "0.1.0"


@hookimpl
def zoo_register_modalities(register):
    register("text", load=load_text, collate=collate_text, extra="text", is_single=is_single_text, length=text_length,
             render=render_text, prompts=True,  # zero-shot embeds class prompts ("a photo of a {}") as text
             extensions=(".txt",),
             description="text: str raws, list[str] batches (encoders tokenise)")


@hookimpl
def zoo_register_encoders(register):
    register("text", "bow", BagOfWordsEncoder, description="hashed bag of words (+ char n-grams) → EmbeddingBag → MLP")
    register("text", "hf", build_hf, variant="Hub id | dir | model_type",
             description="transformers AutoModel: hf:<Hub id | dir | model_type with config=>, pooling cls/mean/last")
    register("text", "open_clip", build_open_clip, variant="arch",
             description="text tower of an open_clip model: open_clip:<arch>")


@hookimpl
def zoo_register_augmentations(register):
    register("text", "word_deletion", augment.word_deletion, description="delete each word with probability p")
    register("text", "word_dropout", augment.word_deletion, description="alias of word_deletion")
    register("text", "word_swap", augment.word_swap, description="swap random adjacent words")
    register("text", "word_repetition", augment.word_repetition,
             description="duplicate random words (ESimCSE, dup_rate)")


@hookimpl
def zoo_register_pair_strategies(register):
    register("supervised_simcse", TextTriplets,
             description="anchor / positive / hard-negative fields → three views (supervised SimCSE)")


@hookimpl
def zoo_register_objectives(register):
    register("simcse_sup", SimCSESupervisedLoss,
             citation="Gao, Yao, Chen 2021, SimCSE: Simple Contrastive Learning of Sentence Embeddings "
                      "(EMNLP 2021, arXiv:2104.08821)",
             description="InfoNCE of anchors vs [positives; hard negatives] (SimCSE eq. 5)")
