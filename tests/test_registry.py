"""The plugin registry: hooks, broken plugins, duplicates, name suggestions, entry points."""
from __future__ import annotations

import importlib.metadata as md
import types

import pytest
import torch

import zoo
from zoo import hookimpl
from zoo.errors import PluginError, UnknownNameError
from zoo.plugins import ZooPluginManager


def _module(name: str, **fns) -> types.ModuleType:
    mod = types.ModuleType(name)
    for k, v in fns.items():
        setattr(mod, k, v)
    return mod


def test_core_registers_without_plugins():
    mgr = ZooPluginManager(autoload=False)
    assert "vector" in mgr.registry.names("modalities")
    assert "mlp" in mgr.registry.names("encoders", "vector")
    assert {"paired", "two_views", "dropout_twins", "hierarchical"} <= set(mgr.registry.names("pair_strategies"))
    assert {"local-dir", "hf-hub"} <= set(mgr.registry.names("pretrained"))
    assert all(p.ok for p in mgr.plugins.values())


def test_misspelt_hook_is_reported_not_fatal(fresh_plugins):
    @hookimpl
    def zoo_register_encoder(register):  # missing the final "s"
        pass

    with pytest.warns(RuntimeWarning, match="misspelt"):
        info = fresh_plugins.register(_module("misspelt", zoo_register_encoder=zoo_register_encoder))
    assert not info.ok and "zoo_register_encoder" in info.error
    assert "misspelt" in fresh_plugins.plugins and not fresh_plugins.pm.has_plugin("misspelt")


def test_plugin_raising_while_registering_is_isolated(fresh_plugins):
    @hookimpl
    def zoo_register_encoders(register):
        register("vector", "half", lambda: None)
        raise RuntimeError("boom")

    with pytest.warns(RuntimeWarning, match="broken.*boom"):
        fresh_plugins.register(_module("broken", zoo_register_encoders=zoo_register_encoders))
    assert "half" not in zoo.list_encoders("vector") and "vector/half" not in zoo.list_encoders()
    assert "vector/mlp" in zoo.list_encoders("vector")  # the rest keeps working
    assert "boom" in fresh_plugins.plugins["broken"].error


def test_duplicate_registration_names_both_plugins(fresh_plugins):
    @hookimpl
    def zoo_register_encoders(register):
        register("vector", "mlp", lambda **kw: None)

    with pytest.raises(PluginError, match=r"'zoo.data.vector' and 'dup'"):
        fresh_plugins.register(_module("dup", zoo_register_encoders=zoo_register_encoders))


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UnknownNameError, match="Did you mean: 'mlp'"):
        zoo.create_encoder("vector", "mpl")
    with pytest.raises(UnknownNameError, match="unknown modality 'vectr'.*'vector'"):
        zoo.create_encoder("vectr", "mlp")
    with pytest.raises(UnknownNameError, match="'paired'"):
        zoo.registry().get("pair_strategies", "pairs")
    err = pytest.raises(UnknownNameError, zoo.create_objective, "clipp").value
    assert isinstance(err, KeyError) and "clip" in str(err)


def test_unknown_encoder_option_lists_the_valid_ones():
    with pytest.raises(zoo.RecipeError, match="'widht'.*valid options: in_dim, hidden, out_dim"):
        zoo.create_encoder("vector", "mlp", widht=3)


class _FakeEP:
    def __init__(self, name, target):
        self.name, self.value, self.dist, self._target = name, f"fake:{name}", None, target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


@hookimpl
def _register_fancy(register):
    register("vector", "fancy", lambda **kw: None)


def _fake_entry_points(monkeypatch, eps):
    monkeypatch.setattr(md, "entry_points", lambda group=None: eps if group == "zoo" else [])


def test_entry_point_that_fails_to_import_is_reported(monkeypatch):
    good = _module("good_plugin", zoo_register_encoders=_register_fancy)
    _fake_entry_points(monkeypatch, [_FakeEP("bad", ImportError("No module named 'missing_dep'")),
                                     _FakeEP("good", good)])
    with pytest.warns(RuntimeWarning, match="'bad' failed to load.*missing_dep"):
        mgr = ZooPluginManager(autoload=True)
    assert not mgr.plugins["bad"].ok and mgr.plugins["good"].ok
    assert "fancy" in mgr.registry.names("encoders", "vector")


def test_zoo_plugins_allow_list_and_autoload_switch(monkeypatch):
    good = _module("good_plugin", zoo_register_encoders=_register_fancy)
    _fake_entry_points(monkeypatch, [_FakeEP("good", good), _FakeEP("other", ImportError("x"))])
    monkeypatch.setenv("ZOO_PLUGINS", "good")
    mgr = ZooPluginManager()
    assert "good" in mgr.plugins and "other" not in mgr.plugins
    monkeypatch.setenv("ZOO_DISABLE_PLUGIN_AUTOLOAD", "1")
    mgr = ZooPluginManager()
    assert "good" not in mgr.plugins and "zoo.data.vector" in mgr.plugins


def test_register_plugin_at_runtime_then_unregister(fresh_plugins):
    class Enc(torch.nn.Module):
        output_dim = 4

        def forward(self, x):
            return x[:, :4]

    @hookimpl
    def zoo_register_encoders(register):
        register("vector", "first4", Enc)

    zoo.register_plugin(_module("runtime", zoo_register_encoders=zoo_register_encoders))
    assert zoo.create_encoder("vector", "first4")(torch.ones(2, 8)).shape == (2, 4)
    zoo.unregister_plugin("runtime")
    with pytest.raises(UnknownNameError):
        zoo.create_encoder("vector", "first4")


def test_encoder_without_output_dim_is_a_plugin_error(fresh_plugins):
    @hookimpl
    def zoo_register_encoders(register):
        register("vector", "nodim", lambda: torch.nn.Identity())

    zoo.register_plugin(_module("nodim", zoo_register_encoders=zoo_register_encoders))
    with pytest.raises(PluginError, match="output_dim"):
        zoo.create_encoder("vector", "nodim")
