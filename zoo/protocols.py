"""The plugin contract as code: what each registered thing must (and may) provide.

A plugin registers *factories* (``build``, ``make``, ``load``…) through the hooks of
:mod:`zoo.hookspecs`; what those factories return must satisfy the protocols below. They are
``typing.Protocol`` classes, so a plugin needs no base class: an object that has the members
satisfies them (``isinstance`` works for the ``runtime_checkable`` ones, which check only that the
members exist, not their signatures).

- :class:`Encoder`: ``forward(batch) -> (B, D)`` and ``output_dim``; the optional methods the zoo
  uses when present are the smaller protocols :class:`LevelledEncoder`, :class:`PreprocessingEncoder`,
  :class:`ItemPreprocessingEncoder`, :class:`EncoderWithAssets`, :class:`ExportableEncoder`.
- :class:`Objective`: ``objective(embeddings, *, logit_scale, logit_bias=None, labels=None,
  mask=None) -> scalar``; every optional attribute is a field of :class:`ObjectiveTraits`, the one
  place the core reads them (``ObjectiveTraits.of(objective).needs_logit_bias``).
- :class:`Modality`: what ``zoo_register_modalities`` registers (:class:`zoo.registry.ModalitySpec`
  is the concrete one): ``load``, ``collate`` and the capabilities that let the core handle a
  modality it does not know by name.
- :class:`Dataset`: map-style, items ``{field: raw}``, with the attributes of :mod:`zoo.data.datasets`.
- :class:`PairStrategy`: ``setup(fields)`` then ``pair(samples, label_fields, generators)``.
- :class:`EvalTask` and :class:`Command`: what ``zoo_register_eval_tasks`` and
  ``zoo_register_commands`` register.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor


# -- encoders -------------------------------------------------------------------------------------------
@runtime_checkable
class Encoder(Protocol):
    """What ``zoo_register_encoders``' ``build(**kw)`` returns: an ``nn.Module`` mapping the batch its
    modality's ``collate`` (or its own ``preprocess``) makes to ``(B, output_dim)``."""

    output_dim: int

    def forward(self, batch: Any) -> Tensor:  # batch -> (B, output_dim)
        ...


@runtime_checkable
class LevelledEncoder(Protocol):
    """Optional: intermediate embeddings for hierarchical objectives (``model.towers.<k>.levels``)."""

    level_dims: Mapping[str, int]  # level -> its width D_level

    def forward_levels(self, batch: Any) -> Mapping[str, Tensor]:  # {"final": (B, D), level: (B, D_level)…}
        ...


@runtime_checkable
class PreprocessingEncoder(Protocol):
    """Optional: an encoder that makes its own batch from raws (tokenisers, image transforms); it is then
    used instead of the modality's ``collate``. ``preprocess_config()`` is saved with a checkpoint
    (JSON) so that a loaded model preprocesses alike."""

    def preprocess(self, raws: Sequence[Any]) -> Any:
        ...

    def preprocess_config(self) -> dict[str, Any]:
        ...


@runtime_checkable
class ItemPreprocessingEncoder(Protocol):
    """Optional: ``model.encode`` sorts inputs by these lengths (e.g. token counts) and never
    preprocesses an input twice (see :mod:`zoo.inference`)."""

    def preprocess_items(self, raws: Sequence[Any]) -> tuple[list[Any], list[int]]:  # (items, lengths)
        ...

    def collate_items(self, items: Sequence[Any]) -> Any:  # a chunk of items -> the batch preprocess gives
        ...


@runtime_checkable
class EncoderWithAssets(Protocol):
    """Optional: files that travel with a checkpoint (a tokenizer's vocabulary) under ``assets/<tower>``."""

    def save_assets(self, directory: Any) -> None:
        ...

    def load_assets(self, directory: Any) -> None:
        ...


@runtime_checkable
class ExportableEncoder(Protocol):
    """Optional, for ``model.export`` (:mod:`zoo.hub.export`): an encoder implements the one(s) of the
    formats it can be written in."""

    def sentence_transformers_parts(self) -> Any:
        ...

    def open_clip_parts(self) -> Any:
        ...


# -- objectives -----------------------------------------------------------------------------------------
@runtime_checkable
class Objective(Protocol):
    """What ``zoo_register_objectives``' ``make(**kw)`` returns (an ``nn.Module``; the trainer moves it to
    the device). ``embeddings``: ``{view: (B, D)}`` L2-normalised, rows aligned; ``logit_scale``: ``1/τ``
    (already exponentiated); ``labels``: ``{level: (B,) int64}``; ``mask``: ``{view: (B,) bool}``.
    Optional attributes: :class:`ObjectiveTraits`."""

    def __call__(self, embeddings: Mapping[str, Tensor], *, logit_scale: Tensor | float,
                 logit_bias: Tensor | float | None = None, labels: Mapping[str, Tensor] | None = None,
                 mask: Mapping[str, Tensor] | None = None) -> Tensor:  # () scalar loss
        ...


class LocalObjective(Protocol):
    """Optional: the distributed path. ``forward_local(local, gathered, rank_offset, *, logit_scale,
    logit_bias=None, labels=None, mask=None)``: this rank's rows (``local``: ``{view: (b, D)}``) against
    every rank's (``gathered``: ``{view: (world·b, D)}``); the sum over ranks is the global loss.
    Without it, torchrun runs the objective on embeddings all-gathered with gradients."""

    def forward_local(self, local: Mapping[str, Tensor], gathered: Mapping[str, Tensor], rank_offset: int, *,
                      logit_scale: Tensor | float, logit_bias: Tensor | float | None = None,
                      labels: Mapping[str, Tensor] | None = None,
                      mask: Mapping[str, Tensor] | None = None) -> Tensor:
        ...


@dataclass(frozen=True)
class ObjectiveTraits:
    """Every optional attribute of an objective, with its default: the core reads them here, never with
    ``getattr`` at the call site. ``ObjectiveTraits.of(objective)`` reads an objective (or any module).

    - ``required_views``: extra embedding keys the objective needs besides one per view, as
      ``"view/level"`` (intermediate levels from the encoder's ``forward_levels``); the trainer
      computes only these. Default: none.
    - ``needs_logit_bias``: the objective uses ``logit_bias`` (sigmoid losses); the trainer refuses to
      start when the model has none. Default: False.
    - ``supports_label_positives``: the objective accepts ``labels={"positives": (B,)}`` and treats
      rows of equal label as positives (SupCon); the hierarchical objective requires it of the
      objective it applies per level. Default: False.
    - ``forward_local``: the distributed local path (:class:`LocalObjective`), or None.
    - ``similarity``: ``similarity(query: {view: (N, D)}, candidates: (C, D)) -> (N, C)``, the
      objective's own score of candidates given the other views (Symile's multilinear inner product);
      the pictures draw it instead of cosines. Default: None.
    - ``generator``: a ``torch.Generator`` the objective draws from (MoCHi's mixing); its state is
      checkpointed, so a resumed run continues its draws. Default: None.
    """

    required_views: frozenset[str] = frozenset()
    needs_logit_bias: bool = False
    supports_label_positives: bool = False
    forward_local: Callable[..., Tensor] | None = None
    similarity: Callable[[Mapping[str, Tensor], Tensor], Tensor] | None = None
    generator: torch.Generator | None = None

    @classmethod
    def of(cls, objective: Any) -> ObjectiveTraits:
        """The traits ``objective`` declares (the defaults for those it does not)."""
        found = {f.name: getattr(objective, f.name, None) for f in fields(cls)}
        return cls(required_views=frozenset(found["required_views"] or ()),
                   needs_logit_bias=bool(found["needs_logit_bias"]),
                   supports_label_positives=bool(found["supports_label_positives"]),
                   forward_local=found["forward_local"] if callable(found["forward_local"]) else None,
                   similarity=found["similarity"] if callable(found["similarity"]) else None,
                   generator=found["generator"] if isinstance(found["generator"], torch.Generator) else None)


# -- modalities -----------------------------------------------------------------------------------------
@runtime_checkable
class Modality(Protocol):
    """What ``zoo_register_modalities`` registers, as the core reads it (:class:`zoo.registry.ModalitySpec`).

    ``load`` and ``collate`` are required; each capability is ``None`` (or False) when the modality
    lacks it, and the core then falls back to what needs no knowledge of the modality:

    - ``thumbnail(raw) -> (H, W) | (H, W, 3) array in [0, 1] | None``: a raw item as a picture
      (:mod:`zoo.evaluation.plots` draws only through it); without it items are shown as text or by index.
    - ``prompts``: the modality encodes class prompts (strings such as ``"a photo of a {}"``); zero-shot
      classification embeds a dataset's prompts with the tower of such a modality.
    - ``count(batch) -> int`` and ``slice(batch, start, stop) -> batch``: for batches that are not
      tensors, lists or dicts of them (a PyG ``Batch``): how many rows, and rows ``start:stop``
      (GradCache's chunks, ``zoo.data.batches``).
    - ``cast(batch, dtype) -> batch``: such a batch with its floating tensors in ``dtype`` (integer ones,
      e.g. edge indices, untouched), for a model loaded in bf16/fp16 (:func:`zoo.inference.cast_floats`).
    - ``is_single(x) -> bool``, ``length(raw) -> int``: see :mod:`zoo.inference`.
    - ``render(raw) -> (mime, bytes)`` for the search page of :mod:`zoo.retrieval` (``zoo serve``).
    """

    name: str
    load: Callable[[Any], Any]
    collate: Callable[[list[Any]], Any]
    thumbnail: Callable[[Any], Any] | None
    prompts: bool
    count: Callable[[Any], int] | None
    slice: Callable[[Any, int, int], Any] | None
    cast: Callable[[Any, Any], Any] | None


# -- datasets and pair strategies -----------------------------------------------------------------------
@runtime_checkable
class Dataset(Protocol):
    """What ``zoo_register_datasets``' ``make(split="train", **kw)`` returns (see :mod:`zoo.data.datasets`):
    map-style, ``ds[i] -> {field: raw}`` plus the integer label fields. ``fields``: field -> modality;
    ``label_fields``: fields holding integer ids. Optional: ``class_names`` and ``prompts`` (templates with
    ``{}``) for zero-shot, ``targets`` (``{name: floats}``) for a regression probe,
    ``baseline_features(field) -> (array (N, F), name)`` for the linear probe's baseline, ``set_epoch(e)``
    (re-drawn per epoch), ``loaded_fields`` (fields whose raws already are what their modality's ``load``
    returns: the collator skips the call), ``split``, ``description``, ``source``, ``license``."""

    fields: dict[str, str]
    label_fields: list[str]

    def __len__(self) -> int:
        ...

    def __getitem__(self, index: int) -> dict[str, Any]:
        ...


@runtime_checkable
class PairStrategy(Protocol):
    """What ``zoo_register_pair_strategies``' ``make(**kw)`` returns (:class:`zoo.data.pairs.PairStrategy` is
    the base class to subclass): ``setup({field: modality})`` once, then per batch
    ``pair(samples, label_fields, generators) -> RawViews`` (views ``{view: (modality, raws)}``, labels,
    mask), drawing randomness only from each sample's generator."""

    def setup(self, dataset_fields: dict[str, str]) -> None:
        ...

    def pair(self, samples: list[dict[str, Any]], label_fields: list[str],
             gens: list[torch.Generator]) -> Any:
        ...


# -- evaluation tasks and commands ----------------------------------------------------------------------
class EvalTask(Protocol):
    """What ``zoo_register_eval_tasks`` registers: ``run(model, dataset, **options) -> {metric: value}``.
    ``dataset`` is the evaluation split (a zoo Dataset); a task that needs the training split too is
    registered with ``needs_train=True`` and receives ``train_dataset=``. The options a recipe's
    ``[eval.options.<task>]`` may set are ``run``'s keyword parameters."""

    def __call__(self, model: Any, dataset: Any, **options: Any) -> Mapping[str, Any]:
        ...


class Command(Protocol):
    """What ``zoo_register_commands`` registers: ``add_arguments(parser)`` fills an ``argparse`` sub-parser,
    ``run(args) -> int | None`` runs the command (None is exit status 0)."""

    def __call__(self, args: Any) -> int | None:
        ...
