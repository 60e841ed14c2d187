"""Every hook a zoo plugin can implement (pluggy project name ``"zoo"``).

Each hook receives one argument, ``register``: a callback the plugin calls once per thing
it adds (the pattern of simonw/llm). A plugin is therefore a module of small functions::

    from zoo import hookimpl

    @hookimpl
    def zoo_register_encoders(register):
        register("image", "timm", build_timm_encoder, description="any timm backbone: timm:<name>")

Hooks only ever grow by adding arguments; the keyword arguments a ``register`` callback
takes may grow too, never shrink. Registering the same (kind, modality, name) from two
plugins is a :class:`zoo.PluginError` that names both.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def zoo_register_modalities(register):
    """Add modalities.

    ``register(name, *, load, collate, extra=None, extensions=(), thumbnail=None, is_single=None, length=None,
    description="")``

    - ``load(path_or_value) -> raw``: read one input (a file path, bytes, an array…) into the
      modality's raw form.
    - ``collate(list[raw]) -> batch``: stack raws into the batch an encoder consumes. Batch
      shape details live here, never in the trainer.
    - ``extra``: the pip extra that installs its dependencies (``pip install zoo[audio]``).
    - ``extensions``: file suffixes ``load`` reads (``(".png", ".jpg")``); the ``folder`` and
      ``csv`` datasets pick a file's modality by them and hand ``load`` a ``pathlib.Path``.
    - ``thumbnail(raw) -> array | None`` (optional): a raw item as an ``(H, W)`` or ``(H, W, 3)``
      array in [0, 1], so pictures (``zoo.evaluation.plots``) can show it; without it items are shown by
      their text or index.
    - ``is_single(x) -> bool`` (optional): ``x`` is one raw input, not a list of them nor a
      preprocessed batch, so ``model.encode(name, x)`` gives ``(D,)`` and ``preprocess`` a batch of
      one. Default: anything but a list, tuple, numpy array, tensor or mapping (:mod:`zoo.inference`).
    - ``length(raw) -> int`` (optional): the cost of a loaded raw (text: characters); ``encode``
      sorts the inputs of a call by it so that batches pad little, and restores their order.
    """


@hookspec
def zoo_register_encoders(register):
    """Add encoders for a modality.

    ``register(modality, name, build, *, description="")``

    ``build(**kw) -> nn.Module`` mapping a batch to ``(B, D_enc)`` with an ``output_dim``
    attribute. A *family* name such as ``"timm"`` is looked up for ``"timm:<variant>"`` and
    built as ``build("<variant>", **kw)``; register it with ``variant="<what the variant is>"`` so
    listings show it as written in a recipe (``timm:<timm model>``). Optional encoder methods the zoo uses when present:
    ``forward_levels(batch) -> {level: (B, D)}`` with ``level_dims``, ``preprocess(raws)``
    (tokenisers, image transforms), ``preprocess_config()`` and ``save_assets(dir)`` /
    ``load_assets(dir)`` for files that travel with a checkpoint, and for ``model.export``
    ``sentence_transformers_parts()`` / ``open_clip_parts()`` (see :mod:`zoo.hub.export`).
    Every ``register`` also takes ``aliases=[...]``: other spellings that still resolve
    (saved checkpoints, old recipes) but are not listed.
    """


@hookspec
def zoo_register_augmentations(register):
    """Add augmentations for a modality.

    ``register(modality, name, make, *, description="")``

    ``make(**kw) -> callable(raw, generator) -> raw view``; deterministic for a given
    ``torch.Generator``.
    """


@hookspec
def zoo_register_pair_strategies(register):
    """Add pair strategies (how a batch of samples becomes views and positives).

    ``register(name, make, *, description="")``

    ``make(**kw) -> zoo.data.pairs.PairStrategy``.
    """


@hookspec
def zoo_register_objectives(register):
    """Add training objectives.

    ``register(name, make, *, citation="", description="")``

    ``make(**kw) -> nn.Module`` whose ``forward(embeddings, *, logit_scale, logit_bias=None,
    labels=None, mask=None)`` returns a scalar loss. An ``nn.Module`` class works as ``make``.
    """


@hookspec
def zoo_register_datasets(register):
    """Add datasets.

    ``register(name, make, *, description="")``

    ``make(split="train", **kw) -> Dataset`` yielding ``{field: raw}`` dicts, with the
    attributes documented in :mod:`zoo.data.datasets`.
    """


@hookspec
def zoo_register_pretrained(register):
    """Add a source of pretrained models.

    ``register(prefix, resolve, *, description="", list_names=None, info=None, origin=None, offline=None,
    aliases=())``

    ``resolve(name, *, pretrained=True) -> ContrastiveModel`` for ``zoo.load("prefix:name")``;
    ``list_names() -> Iterable[str]`` feeds :func:`zoo.list_models`; ``info(name) -> dict``
    feeds ``zoo info``; ``origin(name) -> {"base_model", "license", "citation"}`` (no network)
    is kept with the model and its re-saves for model cards; ``offline(name) -> bool`` says
    whether the name loads without a network (``zoo list models`` marks it).
    """
