"""The registry: what the loaded plugins registered, looked up by (kind, modality, name).

Plugins never touch this module directly; they call the ``register`` callbacks of
:mod:`zoo.hookspecs`. Lookups raise :class:`UnknownNameError` with the closest names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from zoo.errors import DuplicateNameError, UnknownNameError

KINDS = ("modalities", "encoders", "augmentations", "pair_strategies", "objectives", "datasets", "pretrained",
         "eval_tasks", "commands")
# how a lookup error names one thing of a kind
LABELS = {"pair_strategies": "pair strategy", "pretrained": "pretrained source", "modalities": "modality",
          "eval_tasks": "evaluation task", "commands": "command"}


@dataclass(frozen=True)
class ModalitySpec:
    """A registered modality: how to read and batch its raws, and the capabilities the core asks it
    for instead of naming it (documented in :func:`zoo.hookspecs.zoo_register_modalities` and
    :class:`zoo.protocols.Modality`). ``registry().modality(name)`` returns it; it is also the
    modality entry's ``factory``, and calling it loads (``spec(value) == spec.load(value)``), as the
    entry's ``factory`` did when it was the load function."""

    name: str
    load: Callable[[Any], Any]
    collate: Callable[[list[Any]], Any]
    extra: str | None = None
    extensions: tuple[str, ...] = ()
    description: str = ""
    thumbnail: Callable[[Any], Any] | None = None      # raw -> (H, W[, 3]) array in [0, 1], or None
    render: Callable[[Any], tuple[str, bytes]] | None = None  # raw -> (mime, bytes) for zoo serve's page
    is_single: Callable[[Any], bool] | None = None      # x is one raw input (zoo.inference)
    length: Callable[[Any], int] | None = None          # a loaded raw's cost (encode sorts by it)
    prompts: bool = False                               # encodes class prompts (zero-shot's class embeddings)
    count: Callable[[Any], int] | None = None           # rows of a batch that is no tensor/list/dict
    slice: Callable[[Any, int, int], Any] | None = None  # rows start:stop of such a batch
    cast: Callable[[Any, Any], Any] | None = None       # such a batch with its floating tensors in a dtype

    def __call__(self, value: Any) -> Any:
        return self.load(value)


@dataclass
class Entry:
    """One registered thing: ``factory`` is what the plugin registered to make it (for a modality, its
    :class:`ModalitySpec`), ``meta`` the other keyword arguments it passed to ``register``."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    modality: str | None = None
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.modality, self.name)

    @property
    def qualname(self) -> str:
        return f"{self.modality}/{self.name}" if self.modality else self.name


class Registry:
    """A table per kind; keys are ``(modality or None, name)``."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[str | None, str], Entry]] = {k: {} for k in KINDS}
        # other spellings that still resolve (``register(..., aliases=["openclip"])``); listings show only names
        self.aliases: dict[str, dict[tuple[str | None, str], str]] = {k: {} for k in KINDS}

    def add(self, entry: Entry) -> None:
        table = self.tables[entry.kind]
        aliases = list(entry.meta.get("aliases", ()))
        for key in [entry.key, *((entry.modality, a) for a in aliases)]:
            old = table.get(key) or table.get((key[0], self.aliases[entry.kind].get(key, "")))
            if old is not None:
                raise DuplicateNameError(
                    f"{LABELS.get(entry.kind, entry.kind.rstrip('s'))} {entry.qualname!r} (or its alias "
                    f"{key[1]!r}) is registered by two plugins: {old.plugin!r} and {entry.plugin!r}. Uninstall one of "
                    f"them or block it with ZOO_PLUGINS=<the plugins to allow>."
                )
        table[entry.key] = entry
        for alias in aliases:
            self.aliases[entry.kind][(entry.modality, alias)] = entry.name

    def canonical(self, kind: str, name: str, modality: str | None = None) -> str:
        """``name`` with an alias replaced by the registered name (``openclip`` → ``open_clip``)."""
        return self.aliases[kind].get((modality, name), name)

    def names(self, kind: str, modality: str | None = None) -> list[str]:
        table = self.tables[kind]
        return sorted(e.name for e in table.values() if modality is None or e.modality == modality)

    def entries(self, kind: str, modality: str | None = None) -> list[Entry]:
        return sorted(
            (e for e in self.tables[kind].values() if modality is None or e.modality == modality),
            key=lambda e: (e.modality or "", e.name),
        )

    def modality(self, name: str) -> ModalitySpec:
        """The :class:`ModalitySpec` registered as ``name`` (:class:`UnknownNameError` if none is)."""
        return self.get("modalities", name).factory

    def get(self, kind: str, name: str, modality: str | None = None) -> Entry:
        """Exact lookup; for ``family:variant`` names the family entry is returned."""
        table = self.tables[kind]
        entry = table.get((modality, self.canonical(kind, name, modality)))
        if entry is None and ":" in name:
            entry = table.get((modality, self.canonical(kind, name.split(":", 1)[0], modality)))
        if entry is None:
            label = LABELS.get(kind, kind.rstrip("s"))
            context = ""
            if modality is not None:
                if (None, modality) not in self.tables["modalities"]:
                    raise UnknownNameError("modality", modality, self.names("modalities"))
                context = f" for modality {modality!r}"
            raise UnknownNameError(label, name, self.names(kind, modality), context=context)
        return entry
