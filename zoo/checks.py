"""Checks of constructor arguments and recipe options, calling a factory so that its failures name the recipe key,
and importing an optional dependency so that its absence names the extra to install."""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import math
import numbers
from types import ModuleType
from typing import Any, Callable

from zoo.errors import OptionError, PluginError, RecipeError, ZooError

# what a constructor may raise for a bad option; anything else (KeyboardInterrupt, a ZooError…) passes
_RECIPE_KEY: contextvars.ContextVar[str] = contextvars.ContextVar("zoo_recipe_key", default="")

_OPTION_FAILURES = (ValueError, TypeError, AttributeError, ArithmeticError, RuntimeError, IndexError, KeyError,
                    AssertionError, MemoryError)


@contextlib.contextmanager
def recipe_key(key: str):
    """Name the recipe table (``"objective.options"``, ``"model.towers.x"``) whose options the
    factories called inside build, so that their errors name the key to fix."""
    token = _RECIPE_KEY.set(key)
    try:
        yield
    finally:
        _RECIPE_KEY.reset(token)


def call_factory(what: str, factory: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Call a registered factory. Unknown keyword arguments, an :class:`OptionError` and the builtin
    errors a constructor raises for a bad value (``ValueError``, ``TypeError``, ``RuntimeError``…) all
    become a :class:`RecipeError` naming the recipe key (see :func:`recipe_key`) and the options."""
    key = _RECIPE_KEY.get()
    where = f"{key}: " if key else ""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        sig = None
    if sig is not None and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        params = sig.parameters
        valid = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
        unknown = sorted(set(kw) - set(valid))
        if unknown:
            raise RecipeError(f"{where}{what} does not accept option(s) {', '.join(map(repr, unknown))}; "
                              f"valid options: {', '.join(valid) or 'none'}.")
    try:
        return factory(*args, **kw)
    except OptionError as exc:
        if not key or str(exc).startswith(key):  # no recipe here, or a nested factory named it already
            raise
        shown = f" = {short_repr(kw[exc.option])}" if exc.option in kw else ""
        raise OptionError(exc.option, f"{key}.{exc.option}{shown}: {what}: {exc}") from exc
    except RecipeError as exc:  # a constructor's own check: add the recipe key and the options it was given
        if not key or type(exc) is not RecipeError or str(exc).startswith(key):
            raise
        options = ", ".join(f"{k} = {short_repr(v)}" for k, v in kw.items()) or "no options"
        raise RecipeError(f"{where}{what} could not be built with {options}: {exc}") from exc
    except ZooError:
        raise
    except _OPTION_FAILURES as exc:
        options = ", ".join(f"{k} = {short_repr(v)}" for k, v in kw.items()) or "no options"
        raise RecipeError(f"{where}{what} could not be built with {options}: {type(exc).__name__}: "
                          f"{short_repr(str(exc), 300, quote=False).rstrip('.')}. Fix these options "
                          f"(`zoo info {what.split()[-1].strip(chr(39))}` says what each accepts).") from exc


def short_repr(value: Any, limit: int = 60, quote: bool = True) -> str:
    """``repr(value)`` cut to ``limit`` characters (a 5000-digit integer stays readable in a message)."""
    try:
        text = repr(value) if quote else str(value)
    except ValueError:  # an int beyond Python's int-str limit
        text = f"<{type(value).__name__} of {value.bit_length()} bits>" if isinstance(value, int) else "<value>"
    return text if len(text) <= limit else text[:limit - 12] + " … " + text[-8:]


def check_option(option: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False,
                 allow_none: bool = False, who: str = "", hint: str = "") -> Any:
    """``value`` if it is a number (an int with ``integer``) in the range, else an :class:`OptionError`
    naming ``option``, the range and ``hint`` (e.g. the paper's value). ``low_open``: ``value > low``."""
    if value is None and allow_none:
        return value
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool)
    if ok and not integer:
        ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return value
    if low is not None and high is not None:
        rule = f"{kind} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        rule = f"{kind} {'>' if low_open else '≥'} {low:g}"
    elif high is not None:
        rule = f"{kind} {'<' if high_open else '≤'} {high:g}"
    else:
        rule = f"finite {kind}" if not integer else kind
    raise OptionError(option, f"{who + ': ' if who else ''}{option} must be {rule}{' or None' if allow_none else ''}, "
                              f"got {short_repr(value)}{'; ' + hint if hint else ''}.")


def check_sizes(who: str, *, dropout: float | None = None, **sizes: int) -> None:
    """Each of ``sizes`` an integer ≥ 1 and ``dropout`` (if given) in [0, 1): an encoder's usual checks."""
    for name, value in sizes.items():
        check_option(name, value, low=1, integer=True, who=who)
    if dropout is not None:
        check_option("dropout", dropout, low=0, high=1, high_open=True, who=who,
                     hint="it is the probability of zeroing an activation")


def require(module: str, extra: str, what: str, *, package: str | None = None) -> ModuleType:
    """``importlib.import_module(module)``, or a :class:`PluginError` naming the fix: ``pip install 'zoo[extra]'``.

    ``what`` says what needs the module (``"the image encoder timm:resnet50"``); ``package`` is its
    pip name where that differs from the module's (``"scikit-learn"`` for ``sklearn``), then also
    offered alone. Example: ``timm = require("timm", "image", "the image encoder timm:resnet50")``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        alone = f" (or pip install {package})" if package else ""
        raise PluginError(f"{what} needs the package {package or module.split('.')[0]!r}, which cannot be imported "
                          f"({exc}). Install it: pip install 'zoo[{extra}]'{alone}.") from exc
