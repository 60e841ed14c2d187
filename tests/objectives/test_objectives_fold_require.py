"""zoo.checks.require: the one optional-import helper of the core and the plugins."""
import sys

import pytest

from zoo.checks import require
from zoo.errors import PluginError


def test_require_returns_the_module():
    import json
    assert require("json", "data", "a test") is json


def test_missing_module_names_what_needs_it_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "zoo_absent_module", None)  # importing it raises ImportError
    with pytest.raises(PluginError, match=r"^the widget needs the package 'zoo_absent_module'.*"
                                          r"Install it: pip install 'zoo\[image\]'\.$"):
        require("zoo_absent_module.part", "image", "the widget")


def test_a_pip_name_that_differs_from_the_module_is_offered_alone(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(PluginError, match=r"pip install 'zoo\[data\]' \(or pip install scikit-learn\)"):
        require("sklearn", "data", "the linear probe", package="scikit-learn")
