"""Plugin loading: built-ins and third-party plugins by the same mechanism.

Built-in plugins are modules of this package and of the distribution's ``plugins/`` folder;
they are declared in the ``zoo`` entry-point group exactly like third-party plugins, so
``ZOO_PLUGINS`` and ``ZOO_DISABLE_PLUGIN_AUTOLOAD`` treat them alike. Only the core's own
modules (objectives, pair strategies, the test modality, local checkpoints) are always on.

- ``ZOO_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry point.
- ``ZOO_PLUGINS=a,b``: load only the entry points named ``a`` and ``b``.

A plugin that fails to import (``sys.exit`` and other ``BaseException``\ s included; only
Ctrl-C goes through), has a misspelt hook, or raises while registering is reported by name with
its error (a warning, and in ``zoo plugins``); the rest of the zoo works on.

Built-ins come first: the ``zoo`` distribution's own entry points load before any third-party
one, so a third-party entry point named like a built-in (``image = "x"``) is not loaded but
reported, and a third-party plugin that registers a name already taken (by a built-in, or by a
plugin loaded before it in entry-point-name order) is disabled as a whole and reported
(:class:`DuplicateNameError`); every other plugin and command keeps working. A plugin registered
at run time with :func:`register_plugin` raises the :class:`DuplicateNameError` instead.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.errors import DuplicateNameError, PluginError, closest
from zoo.registry import KINDS, Entry, ModalitySpec, Registry

CORE_MODULES = ("zoo.objectives", "zoo.data.pairs", "zoo.data.vector", "zoo.hub.format", "zoo.evaluation.tasks")
ENTRY_POINT_GROUP = "zoo"
BUILTIN_DISTRIBUTION = "zoo"  # whose entry points are the built-in plugins (loaded first, names reserved)


@dataclass(frozen=True)
class Signature:
    """What one kind's ``register`` callback accepts: ``register(*keys, factory, **keywords)``.

    ``keys``: the positional names (``modality, name`` for encoders); ``factory``: the name of the
    callable that makes the thing (``None`` for modalities, which pass ``load=`` and ``collate=``);
    ``required`` / ``optional``: the keyword arguments. Every kind also takes ``description=""`` and
    ``aliases=()``. Anything else is a :class:`PluginError` naming the closest accepted keyword.
    """

    keys: tuple[str, ...]
    factory: str | None
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @property
    def keywords(self) -> tuple[str, ...]:
        return (*self.required, *self.optional, *COMMON_KEYWORDS)

    def render(self) -> str:
        """``register(name, make, *, citation=…, description=…, aliases=…)`` as documented."""
        return f"register({', '.join(self.keys + ((self.factory,) if self.factory else ()))}, *, " \
               f"{', '.join(self.keywords)})"


COMMON_KEYWORDS = ("description", "aliases")
MODALITY_CAPABILITIES = ("extra", "extensions", "thumbnail", "render", "is_single", "length", "prompts", "count",
                         "slice", "cast")
SIGNATURES = {
    "modalities": Signature(("name",), None, ("load", "collate"), MODALITY_CAPABILITIES),
    "encoders": Signature(("modality", "name"), "build", (), ("variant",)),
    "augmentations": Signature(("modality", "name"), "make"),
    "pair_strategies": Signature(("name",), "make"),
    "objectives": Signature(("name",), "make", (), ("citation",)),
    "datasets": Signature(("name",), "make"),
    "pretrained": Signature(("prefix",), "resolve", (), ("list_names", "info", "origin", "offline")),
    "eval_tasks": Signature(("name",), "run", (), ("needs_train", "metrics", "lower_is_better", "choices",
                                                   "metric_fields")),
    "commands": Signature(("name",), "run", (), ("add_arguments", "help")),
}
# keywords whose value is called by the core: a non-callable one is refused when it is registered
_CALLABLE = {"load", "collate", "thumbnail", "render", "is_single", "length", "count", "slice", "cast", "list_names", "info",
             "origin", "offline", "metric_fields", "add_arguments"}


@dataclass
class PluginInfo:
    """What ``zoo plugins`` shows for one plugin."""

    name: str
    version: str = ""
    source: str = ""
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


class ZooPluginManager:
    """A pluggy ``PluginManager`` plus the registry it fills."""

    def __init__(self, autoload: bool | None = None, allow: list[str] | None = None):
        self.pm = pluggy.PluginManager("zoo")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.plugins: dict[str, PluginInfo] = {}
        env_allow = os.environ.get("ZOO_PLUGINS", "").strip()
        self.allow = allow if allow is not None else ([p.strip() for p in env_allow.split(",") if p.strip()] or None)
        if autoload is None:
            autoload = os.environ.get("ZOO_DISABLE_PLUGIN_AUTOLOAD", "").strip() in ("", "0", "false", "False")
        for mod in CORE_MODULES:
            self.register(importlib.import_module(mod), name=mod, source="zoo core", strict=True)
        if autoload:
            self.load_entrypoints()

    # -- loading ---------------------------------------------------------------------------
    def load_entrypoints(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every plugin of the entry-point group (the equivalent of pluggy's
        ``load_setuptools_entrypoints``, but one broken plugin does not stop the others).
        Built-in entry points load first; a third-party one cannot take a built-in's name."""
        for ep in sorted(md.entry_points(group=group), key=lambda e: (not _is_builtin(e), e.name)):
            if self.allow is not None and ep.name not in self.allow:
                continue
            dist = getattr(ep, "dist", None)
            version = dist.version if dist else ""
            source = f"{dist.metadata['Name']} {version} (entry point {ep.value})" if dist else ep.value
            if ep.name in self.plugins:
                if _is_builtin(ep) and self.plugins[ep.name].source == source:
                    continue  # the same distribution seen twice on sys.path
                label = f"{ep.name} ({dist.metadata['Name'] if dist else ep.value})"
                taken = self.plugins[ep.name].source or "another plugin"
                self._fail(PluginInfo(label, version, source), DuplicateNameError(
                    f"entry point {ep.name!r} = {ep.value!r} is named like the plugin already loaded from {taken}; "
                    f"it is not loaded. Rename the entry point in the distribution's [project.entry-points.zoo] "
                    f"(names of built-ins are reserved), or uninstall it."))
                continue
            try:
                module = ep.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - sys.exit() in an import is reported too, never fatal
                self._fail(PluginInfo(ep.name, version, source), exc)
                continue
            self.register(module, name=ep.name, version=version, source=source, duplicates="report")

    def register(self, plugin: Any, name: str | None = None, *, version: str = "", source: str = "",
                 strict: bool = False, duplicates: str = "raise", contract: str = "report") -> PluginInfo:
        """Register a plugin object (module or instance) and add what it registers.

        With ``strict=True`` (the core's own modules) a failure raises instead of warning. A name
        registered twice raises :class:`DuplicateNameError`, or with ``duplicates="report"`` (entry
        points) disables this plugin and reports it like any broken one. With ``contract="raise"``
        (:func:`register_plugin`) every broken contract (:class:`PluginError`: an unknown hook or ``register``
        keyword, a missing argument) raises too, rather than disabling the plugin with a warning.
        """
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        info = PluginInfo(name, version or _version_of(plugin), source or getattr(plugin, "__file__", "") or "runtime")
        if self.pm.has_plugin(name) or name in self.plugins:
            raise DuplicateNameError(f"a plugin named {name!r} is already registered; choose another name.")
        try:
            self.pm.register(plugin, name=name)
            self._check_hooks(plugin, name)
            entries = self._collect(plugin, name)
            for entry in entries:
                self.registry.add(entry)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a hook calling sys.exit() is a broken plugin too
            if self.pm.has_plugin(name):
                self.pm.unregister(name=name)
            self._forget(name)
            if strict or (isinstance(exc, DuplicateNameError) and duplicates == "raise") or (
                    isinstance(exc, PluginError) and contract == "raise"):
                raise
            return self._fail(info, exc)
        for entry in entries:
            info.registered.setdefault(entry.kind, []).append(entry.qualname)
        self.plugins[name] = info
        return info

    def _check_hooks(self, plugin: Any, name: str) -> None:
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} implements a hook the zoo does not define: {exc}. "
                              f"Hooks are: {', '.join('zoo_register_' + k for k in KINDS)}.") from exc

    def _collect(self, plugin: Any, name: str) -> list[Entry]:
        entries: list[Entry] = []
        for kind in KINDS:
            caller = getattr(self.pm.hook, f"zoo_register_{kind}")
            for impl in caller.get_hookimpls():
                if impl.plugin_name == name:
                    impl.function(register=_Recorder(kind, name, entries))
        return entries

    def _forget(self, name: str) -> None:
        for table in self.registry.tables.values():
            for key in [k for k, e in table.items() if e.plugin == name]:
                del table[key]

    def _fail(self, info: PluginInfo, exc: BaseException) -> PluginInfo:
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
        info.error = f"{type(exc).__name__}: {exc}{where}"
        self.plugins[info.name] = info
        warnings.warn(f"zoo plugin {info.name!r} failed to load and is skipped: {info.error}. "
                      f"Fix or uninstall it; `zoo plugins` lists every plugin.", RuntimeWarning, stacklevel=3)
        return info


class _Recorder:
    """The ``register`` callback handed to one plugin's hook for one kind: checks the call against the
    kind's :class:`Signature` and records an :class:`Entry`."""

    def __init__(self, kind: str, plugin: str, out: list[Entry]):
        self.kind, self.plugin, self.out = kind, plugin, out
        self.sig = SIGNATURES[kind]

    def _error(self, problem: str) -> PluginError:
        return PluginError(f"plugin {self.plugin!r}: {problem}; {self.kind} are registered as "
                           f"{self.sig.render()}. Fix the plugin's zoo_register_{self.kind} hook.")

    def __call__(self, *args: Any, **kw: Any) -> None:
        sig = self.sig
        unknown = [k for k in kw if k not in sig.keywords]
        if unknown:
            near = closest(unknown[0], sig.keywords)
            raise self._error(f"register() for {self.kind} got the unknown keyword argument {unknown[0]!r}"
                              + (f" (did you mean {near[0]!r}?)" if near else "")
                              + f"; it accepts: {', '.join(sig.keywords)}")
        if sig.factory is None and len(args) == len(sig.keys) + 1:  # a modality's load given by position
            if "load" in kw:
                raise self._error("register() for a modality got load twice (by position and as load=)")
            *args, kw["load"] = args
        missing = [k for k in sig.required if k not in kw]
        if missing:
            raise self._error(f"register() for {self.kind} needs {' and '.join(f'{k}=' for k in missing)}")
        want = len(sig.keys) + (sig.factory is not None)
        if len(args) != want:
            raise self._error(f"register() for {self.kind} takes {want} positional arguments, got {len(args)}")
        for k in _CALLABLE & set(kw):
            if kw[k] is not None and not callable(kw[k]):
                raise self._error(f"register({args[-1]!r}, …): {k}= must be callable or None, got "
                                  f"{type(kw[k]).__name__}")
        description = kw.pop("description", "")
        keys = args[:len(sig.keys)]
        modality = keys[0] if len(keys) == 2 else None
        name = keys[-1]
        if sig.factory is None:  # a modality: its spec is what is registered
            factory: Any = ModalitySpec(name=name, description=description, **{
                k: (tuple(v) if k == "extensions" else v) for k, v in kw.items() if k != "aliases"})
        else:
            factory = args[-1]
            if not callable(factory):
                raise self._error(f"register({name!r}, …): the {sig.factory} argument must be callable, got "
                                  f"{type(factory).__name__}")
        self.out.append(Entry(self.kind, name, factory, self.plugin, modality, description, kw))


def _is_builtin(ep: Any) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.metadata["Name"] == BUILTIN_DISTRIBUTION


def _version_of(plugin: Any) -> str:
    top = (getattr(plugin, "__name__", "") or "").split(".")[0]
    try:
        return md.version(top) if top else ""
    except md.PackageNotFoundError:
        return getattr(plugin, "__version__", "")


_LOCK = threading.Lock()
_MANAGER: ZooPluginManager | None = None


def get_plugin_manager() -> ZooPluginManager:
    """The process-wide manager, built on first use."""
    global _MANAGER
    with _LOCK:
        if _MANAGER is None:
            _MANAGER = ZooPluginManager()
        return _MANAGER


def reset_plugin_manager(**kw: Any) -> ZooPluginManager:
    """Rebuild the manager (re-reads entry points and the environment variables)."""
    global _MANAGER
    with _LOCK:
        _MANAGER = ZooPluginManager(**kw)
        return _MANAGER


def registry() -> Registry:
    return get_plugin_manager().registry


def register_plugin(plugin: Any, name: str | None = None) -> PluginInfo:
    """Register a plugin at run time (a module or object with ``@zoo.hookimpl`` functions). A broken
    contract (a taken name, an unknown hook or ``register`` keyword) raises its :class:`PluginError` here:
    the caller is the plugin's author, at the keyboard; entry-point plugins are disabled and reported instead."""
    return get_plugin_manager().register(plugin, name=name, contract="raise")


def unregister_plugin(name: str) -> None:
    mgr = get_plugin_manager()
    mgr.pm.unregister(name=name)
    mgr._forget(name)
    mgr.plugins.pop(name, None)
