"""Every hook a zoo plugin can implement (pluggy project name ``"zoo"``).

Each hook receives one argument, ``register``: a callback the plugin calls once per thing
it adds (the pattern of simonw/llm). A plugin is therefore a module of small functions::

    from zoo import hookimpl

    @hookimpl
    def zoo_register_encoders(register):
        register("image", "timm", build_timm_encoder, description="any timm backbone: timm:<name>")

Hooks only ever grow by adding arguments; the keyword arguments a ``register`` callback
takes may grow too, never shrink. Each ``register`` accepts exactly the keywords documented
below (plus ``description=""`` and ``aliases=()`` for every kind: other spellings that still
resolve but are not listed); any other keyword (``citaton=``) is a :class:`zoo.errors.PluginError`
naming the closest one, and the plugin is disabled and reported (``zoo plugins``). Registering
the same (kind, modality, name) from two plugins is a :class:`zoo.errors.DuplicateNameError`
that names both. What the registered factories return is specified as ``Protocol`` classes in
:mod:`zoo.protocols`; ``docs/plugins.md`` is the whole contract with an example per hook.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def zoo_register_modalities(register):
    """Add modalities.

    ``register(name, *, load, collate, extra=None, extensions=(), thumbnail=None, render=None, is_single=None,
    length=None, prompts=False, count=None, slice=None, cast=None, description="", aliases=())``

    The registry keeps it as a :class:`zoo.registry.ModalitySpec` (``zoo.registry().modality(name)``).
    The core never names a modality: what it must know of one it asks through these capabilities.

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
    - ``render(raw) -> (mime, bytes)`` (optional): a raw item as a file (an image, a snippet of text)
      for ``zoo serve``'s search page.
    - ``prompts`` (default False): the modality encodes class prompts, strings such as
      ``"a photo of a {}"``. Zero-shot classification builds each class's embedding from a dataset's
      ``prompts`` with the tower of a modality that says ``prompts=True`` (text does).
    - ``count(batch) -> int`` and ``slice(batch, start, stop) -> batch`` (optional, together): for a
      batch that is not a tensor, list, tuple or dict of them (a PyG ``Batch``): its number of rows,
      and rows ``start:stop`` as a batch of the same kind. GradCache splits batches into chunks with
      them (:mod:`zoo.data.batches`); without them such a batch cannot be chunked.
    - ``cast(batch, dtype) -> batch`` (optional): such a batch with its floating tensors in ``dtype``
      and its integer ones untouched, for a model loaded with ``dtype=torch.bfloat16`` (tensors, lists and
      dicts of them are cast by the core); without it such a batch reaches the encoder as collated.
    """


@hookspec
def zoo_register_encoders(register):
    """Add encoders for a modality.

    ``register(modality, name, build, *, variant=None, description="", aliases=())``

    ``build(**kw) -> nn.Module`` mapping a batch to ``(B, D_enc)`` with an ``output_dim``
    attribute. A *family* name such as ``"timm"`` is looked up for ``"timm:<variant>"`` and
    built as ``build("<variant>", **kw)``; register it with ``variant="<what the variant is>"`` so
    listings show it as written in a recipe (``timm:<timm model>``). Optional encoder methods the zoo uses when present:
    ``forward_levels(batch) -> {level: (B, D)}`` with ``level_dims``, ``preprocess(raws)``
    (tokenisers, image transforms), ``preprocess_config()`` and ``save_assets(dir)`` /
    ``load_assets(dir)`` for files that travel with a checkpoint, and for ``model.export``
    ``sentence_transformers_parts()`` / ``open_clip_parts()`` (see :mod:`zoo.hub.export`).
    Every ``register`` also takes ``aliases=[...]``: other spellings that still resolve
    (saved checkpoints, old recipes) but are not listed. The protocols are
    :class:`zoo.protocols.Encoder` and, for the optional methods, :class:`~zoo.protocols.LevelledEncoder`,
    :class:`~zoo.protocols.PreprocessingEncoder`, :class:`~zoo.protocols.ItemPreprocessingEncoder`,
    :class:`~zoo.protocols.EncoderWithAssets`, :class:`~zoo.protocols.ExportableEncoder`. An encoder
    saves a config that rebuilds it with the registered ``build`` (no keyword only a library's own
    loader understands).
    """


@hookspec
def zoo_register_augmentations(register):
    """Add augmentations for a modality.

    ``register(modality, name, make, *, description="", aliases=())``

    ``make(**kw) -> callable(raw, generator) -> raw view``; deterministic for a given
    ``torch.Generator``.
    """


@hookspec
def zoo_register_pair_strategies(register):
    """Add pair strategies (how a batch of samples becomes views and positives).

    ``register(name, make, *, description="", aliases=())``

    ``make(**kw) -> zoo.data.pairs.PairStrategy`` (protocol :class:`zoo.protocols.PairStrategy`).
    """


@hookspec
def zoo_register_objectives(register):
    """Add training objectives.

    ``register(name, make, *, citation="", description="", aliases=())``

    ``make(**kw) -> nn.Module`` whose ``forward(embeddings, *, logit_scale, logit_bias=None,
    labels=None, mask=None)`` returns a scalar loss. An ``nn.Module`` class works as ``make``.
    Optional attributes (``required_views``, ``needs_logit_bias``, ``supports_label_positives``,
    ``forward_local``, ``similarity``, ``generator``) are declared, with their defaults, by
    :class:`zoo.protocols.ObjectiveTraits`; the core reads them only through it.
    """


@hookspec
def zoo_register_datasets(register):
    """Add datasets.

    ``register(name, make, *, description="", aliases=())``

    ``make(split="train", **kw) -> Dataset`` yielding ``{field: raw}`` dicts, with the
    attributes documented in :mod:`zoo.data.datasets` (protocol :class:`zoo.protocols.Dataset`).
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


@hookspec
def zoo_register_eval_tasks(register):
    """Add evaluation tasks (``zoo.evaluate(model, ds, task=name)``, a recipe's ``[eval] tasks``, ``zoo eval --task``).

    ``register(name, run, *, needs_train=False, metrics=".+", lower_is_better=None, choices=None,
    metric_fields=None, description="", aliases=())``

    - ``run(model, dataset, **options) -> {metric: value}``: evaluate ``model`` on ``dataset`` (the
      evaluation split, a zoo Dataset). Its keyword parameters are the task's options: what
      ``[eval.options.<name>]`` and ``zoo.evaluate(..., **options)`` may set (a recipe is checked
      against them before training). Logged as ``"<name>/<metric>"``; numbers only in metrics.jsonl.
    - ``needs_train``: ``run`` also takes ``train_dataset=`` (the training split; a linear probe).
    - ``metrics``: a regular expression the metric names match (``r"top\\d+"``); a recipe's
      ``eval.best_metric`` is checked against it.
    - ``lower_is_better``: a regular expression of the metrics to minimise (ranks, losses) when
      ``eval.best_mode = "auto"``; default: the core's (names with rank, alignment, uniformity).
    - ``choices``: ``{option: (allowed values…)}``, checked in a recipe.
    - ``metric_fields(metric, fields) -> list[str]``: the dataset fields a metric name refers to, so
      that a ``best_metric`` naming a missing field is refused before training.

    The built-in tasks (``zero_shot``, ``retrieval``, ``linear_probe``, ``alignment``) are registered
    through this hook by :mod:`zoo.evaluation.tasks`.
    """


@hookspec
def zoo_register_commands(register):
    """Add ``zoo`` subcommands (the pattern of simonw/llm's ``register_commands``, with argparse).

    ``register(name, run, *, add_arguments=None, help="", description="", aliases=())``

    - ``add_arguments(parser)``: add the command's arguments to its ``argparse`` sub-parser.
    - ``run(args) -> int | None``: run it with the parsed ``argparse.Namespace``; the return value is
      the exit status (None: 0). A :class:`zoo.errors.ZooError` is printed as ``zoo: error: …``
      (status 2); any other exception is reported as a failure of the plugin, by name (status 1).
    - ``help``: the line ``zoo --help`` shows.

    A name the zoo's own commands use (``train``, ``eval``…) is skipped with a warning; one
    ``add_arguments`` that raises drops only that command.
    """
