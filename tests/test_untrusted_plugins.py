"""Third-party plugins cannot take over or stop the zoo (issue 12, section 4).

A distribution whose entry point is named like a built-in does not replace it; a plugin whose
import calls ``sys.exit`` or raises a bare ``BaseException`` is reported like any broken plugin;
a third-party plugin registering a name already taken is disabled and reported while every
command, ``zoo plugins`` included, keeps working.
"""
from __future__ import annotations

import importlib.metadata as md
import sys
import types

import pytest

import zoo
from zoo import hookimpl, plugins
from zoo.cli import main
from zoo.errors import DuplicateNameError, PluginError
from zoo.plugins import ZooPluginManager


class _Dist:
    def __init__(self, name: str, version: str = "1.0"):
        self.metadata, self.version = {"Name": name}, version


class _EP:
    """An entry point of the ``zoo`` group whose ``load`` returns a module or raises."""

    def __init__(self, name: str, target, dist: str = "evil-dist"):
        self.name, self.value, self.dist, self._target = name, f"{dist.replace('-', '_')}_mod", _Dist(dist), target

    def load(self):
        if callable(self._target) and not isinstance(self._target, types.ModuleType):
            return self._target()
        return self._target


def _plugin(name: str, modality: str, encoder: str) -> types.ModuleType:
    @hookimpl
    def zoo_register_encoders(register):
        register(modality, encoder, lambda **kw: None)

    mod = types.ModuleType(name)
    mod.zoo_register_encoders = zoo_register_encoders
    return mod


@pytest.fixture
def entry_points(monkeypatch):
    """Install a list of fake entry points; the process-wide manager is restored afterwards."""
    saved = plugins._MANAGER
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    monkeypatch.delenv("ZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)

    def install(eps):
        monkeypatch.setattr(md, "entry_points", lambda group=None: list(eps) if group == "zoo" else [])
    yield install
    plugins._MANAGER = saved


def test_third_party_entry_point_named_like_a_builtin_does_not_replace_it(entry_points):
    # the impostor comes first (old code loaded the first "image" it met and silently skipped the other)
    entry_points([_EP("image", _plugin("evil_mod", "vector", "impostor")),
                  _EP("image", _plugin("zoo_image_stub", "vector", "genuine"), dist="zoo")])
    with pytest.warns(RuntimeWarning, match="'image' .*named like the plugin already loaded"):
        mgr = ZooPluginManager(autoload=True)
    assert mgr.plugins["image"].ok and mgr.plugins["image"].source.startswith("zoo ")
    assert "genuine" in mgr.registry.names("encoders", "vector")
    assert "impostor" not in mgr.registry.names("encoders", "vector")
    failed = [p for p in mgr.plugins.values() if not p.ok]
    assert len(failed) == 1 and "evil-dist" in failed[0].name and "Rename the entry point" in failed[0].error


def _exits():
    sys.exit(3)


def _raises_base():
    raise BaseException("not an Exception")


@pytest.mark.parametrize("target, what", [(_exits, "SystemExit: 3"), (_raises_base, "BaseException: not an")])
def test_plugin_import_that_exits_or_raises_baseexception_is_reported(entry_points, target, what):
    entry_points([_EP("aaa_exits", target), _EP("good", _plugin("good_mod", "vector", "fancy"))])
    with pytest.warns(RuntimeWarning, match="'aaa_exits' failed to load"):
        mgr = ZooPluginManager(autoload=True)
    assert what in mgr.plugins["aaa_exits"].error
    assert mgr.plugins["good"].ok and "fancy" in mgr.registry.names("encoders", "vector")


def test_plugin_hook_that_exits_while_registering_is_reported(fresh_plugins):
    @hookimpl
    def zoo_register_encoders(register):
        register("vector", "half", lambda **kw: None)
        sys.exit("bye")

    mod = types.ModuleType("exiter")
    mod.zoo_register_encoders = zoo_register_encoders
    with pytest.warns(RuntimeWarning, match="'exiter' failed to load.*SystemExit: bye"):
        info = fresh_plugins.register(mod)
    assert not info.ok and "half" not in fresh_plugins.registry.names("encoders", "vector")


def test_duplicate_registration_by_a_third_party_plugin_disables_only_it(entry_points, capsys):
    # "clash" re-registers the core's vector/mlp: it is disabled and reported, "good" and every command work
    entry_points([_EP("clash", _plugin("clash_mod", "vector", "mlp")), _EP("good", _plugin("good_mod", "vector", "fancy"))])
    with pytest.warns(RuntimeWarning, match="'clash' failed to load.*DuplicateNameError.*'zoo.data.vector' and 'clash'"):
        mgr = plugins.reset_plugin_manager()
    assert not mgr.plugins["clash"].ok and mgr.plugins["good"].ok
    assert mgr.registry.get("encoders", "mlp", "vector").plugin == "zoo.data.vector"
    assert "vector/fancy" in zoo.list_encoders()
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "clash" in out and "FAILED" in out and "DuplicateNameError" in out
    assert main(["list", "encoders"]) == 0


def test_runtime_duplicate_raises_duplicate_name_error(fresh_plugins):
    with pytest.raises(DuplicateNameError, match="two plugins") as err:
        fresh_plugins.register(_plugin("dup2", "vector", "mlp"))
    assert isinstance(err.value, PluginError) and "dup2" not in fresh_plugins.plugins
    with pytest.raises(DuplicateNameError, match="already registered"):
        fresh_plugins.register(types.ModuleType("x"), name="zoo.data.vector")


def test_plugin_loading_no_longer_matches_error_text():
    import inspect
    assert "two plugins" not in inspect.getsource(plugins)
