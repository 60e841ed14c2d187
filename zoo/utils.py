"""Small helpers used across the core and the plugins: moving batches, counting rows, calling factories,
the layer stack of the MLP encoders."""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import inspect
import itertools
import math
import numbers
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from .errors import OptionError, RecipeError, ShapeError, ZooError


def move_to(batch: Any, device: torch.device | str | None, non_blocking: bool = False) -> Any:
    """Move tensors (in dicts, lists, tuples, or objects with ``.to``) to ``device``."""
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor) or hasattr(batch, "to") and not isinstance(batch, (Mapping, str, bytes)):
        try:
            return batch.to(device, non_blocking=non_blocking)
        except TypeError:
            return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device, non_blocking) for v in batch)
    return batch


def batch_size(batch: Any) -> int | None:
    """Number of rows of a batch (first tensor's first dim, ``num_graphs``, or ``len``)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    if hasattr(batch, "num_graphs"):
        return int(batch.num_graphs)
    if isinstance(batch, Mapping):
        for v in batch.values():
            n = batch_size(v)
            if n is not None:
                return n
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        return len(batch)
    return None


_RECIPE_KEY: contextvars.ContextVar[str] = contextvars.ContextVar("zoo_recipe_key", default="")

# what a constructor may raise for a bad option; anything else (KeyboardInterrupt, a ZooError…) passes
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


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(target: str | os.PathLike | int, directory: bool = False) -> None:
    """Give a file (path or fd) made by ``mkstemp`` (0600) or a folder made by ``mkdtemp`` (0700) the
    permissions an ordinary ``open``/``mkdir`` would have had: 0666 / 0777 less the user's umask."""
    mode = (0o777 if directory else 0o666) & ~current_umask()
    if isinstance(target, int):
        os.fchmod(target, mode)
    else:
        os.chmod(target, mode)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file, hex (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        follow_umask(fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(path: str | os.PathLike) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def slice_batch(batch: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a batch: tensors, dicts/lists of them, PyG batches, lists of raws."""
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if hasattr(batch, "num_graphs") and hasattr(batch, "index_select"):
        return type(batch).from_data_list(batch.index_select(slice(start, stop)))
    if isinstance(batch, Mapping):
        n = batch_size(batch)
        return {k: slice_batch(v, start, stop) if batch_size(v) == n else v for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return batch[start:stop]
    raise ShapeError(f"cannot split a batch of type {type(batch).__name__} into chunks; "
                     f"GradCache needs tensors, dicts of tensors, lists or PyG batches.")


def mlp_blocks(dims: Sequence[int], activation: Callable[[], nn.Module] = nn.GELU,
               dropout: float = 0.0) -> nn.ModuleList:
    """Linear layers ``dims[0] → dims[1] → … → dims[-1]``, each but the last followed by
    ``activation()`` and ``Dropout(dropout)``: the layer stack of the MLP encoders (see :func:`mlp_levels`)."""
    last = len(dims) - 2
    return nn.ModuleList(
        nn.Sequential(nn.Linear(a, b), activation(), nn.Dropout(dropout)) if i < last else nn.Linear(a, b)
        for i, (a, b) in enumerate(itertools.pairwise(dims)))


def mlp_levels(blocks: nn.ModuleList, x: Tensor) -> dict[str, Tensor]:
    """``x`` through :func:`mlp_blocks`' ``blocks``; the output of each hidden block is a level:
    ``{"layer1": (B, hidden), …, "final": (B, out)}`` (an encoder's ``forward_levels``)."""
    out = {}
    for i, block in enumerate(blocks):
        x = block(x)
        out[f"layer{i + 1}" if i < len(blocks) - 1 else "final"] = x
    return out
