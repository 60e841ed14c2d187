"""Recipes: strict TOML files validated into dataclasses.

Sections: ``[model]`` ``[data]`` ``[pairs]`` ``[objective]`` ``[optim]`` ``[run]`` (and
``[eval]``). An unknown key or a wrong type raises :class:`RecipeError` naming the key, its
line and the valid keys; ``--set a.b=value`` overrides are type-checked the same way.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime
import math
import re
import sys
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from zoo.checks import short_repr
from zoo.errors import RecipeError

MAX_DEPTH = 32        # arrays/tables nested deeper than this are refused (a 100k-deep array exhausts the stack)
INT_LIMIT = 2**63     # integer keys fit in int64, as torch needs


@dataclass
class ModelSection:
    towers: dict[str, dict] = field(default_factory=dict)  # {tower: {encoder = "…", modality = "…", **encoder kwargs}}
    embed_dim: int = 64
    init: str = ""                   # start from a catalog name ("open_clip:ViT-B-32/openai", "local-dir:runs/x");
                                     # its towers, embed_dim and temperature are kept, towers above are added
    logit_scale: float = math.log(1 / 0.07)
    logit_bias: float | None = None  # set (e.g. -10) for SigLIP (with init: added when the model has none)
    learn_logit_scale: bool = True
    freeze: list[str] = field(default_factory=list)    # parameter-name prefixes, e.g. "towers.text"
    unfreeze: list[str] = field(default_factory=list)  # prefixes trained again after freeze, e.g. the last block


@dataclass
class DataSection:
    dataset: str = ""
    options: dict = field(default_factory=dict)
    split: str = "train"
    eval_split: str = "test"
    batch_size: int = 64              # the global batch: split evenly across torchrun ranks
    num_workers: int = 0              # loader processes, kept for the whole run (capped at the CPUs)
    prefetch_factor: int = 2          # batches each worker prepares ahead (with num_workers > 0)
    shuffle: bool = True
    drop_last: bool = True


@dataclass
class PairsSection:
    strategy: str = "paired"
    options: dict = field(default_factory=dict)


@dataclass
class ObjectiveSection:
    name: str = "clip"
    options: dict = field(default_factory=dict)


@dataclass
class OptimSection:
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-6
    warmup_steps: int = 0
    schedule: str = "cosine"          # cosine | linear | constant
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0            # 0 = off


@dataclass
class RunSection:
    name: str = ""                    # run directory name (default: the recipe file's stem)
    output_dir: str = "runs"
    epochs: int = 1
    steps: int = 0                    # > 0: train this many steps (overrides epochs)
    seed: int = 0
    device: str = "auto"              # auto | cpu | cuda | cuda:1 …
    precision: str = "fp32"           # fp32 | bf16 | fp16
    log_every: int = 10
    checkpoint_every: int = 0         # steps; 0 = at the end only
    keep_checkpoints: int = 2
    eval_every: int = 0               # steps; 0 = at the end only (if [eval] has tasks)
    progress: bool = True
    deterministic: bool = False
    grad_cache_chunk: int = 0         # > 0: GradCache with chunks of this many rows (memory-bounded big batches)
    compile: bool = False             # torch.compile each encoder
    grad_checkpointing: bool = False  # activation checkpointing in encoders that support it
    fsdp: bool = False                # FSDP instead of DDP under torchrun
    on_nonfinite: str = "stop"        # NaN/inf loss: stop (NonFiniteLossError) | skip the batch and count it
    max_skips: int = 10               # with on_nonfinite = "skip": stop after this many skipped batches
    reproduces: str = ""              # the row of docs/results.md this recipe reproduces (cited in the model card)


@dataclass
class EvalSection:
    tasks: list[str] = field(default_factory=list)   # zero_shot | retrieval | linear_probe | alignment
    dataset: str = ""                 # default: the training dataset
    options: dict = field(default_factory=dict)
    best_metric: str = ""             # keep the best checkpoint by this metric ("task/metric", e.g. "zero_shot/top1")
    best_mode: str = "auto"           # max | min | auto (ranks, alignment, uniformity: min; the rest: max)


@dataclass
class Recipe:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    pairs: PairsSection = field(default_factory=PairsSection)
    objective: ObjectiveSection = field(default_factory=ObjectiveSection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)
    eval: EvalSection = field(default_factory=EvalSection)
    description: str = ""
    path: str = ""                    # where it was read from (not a recipe key)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("path")
        return d

    def to_toml(self) -> str:
        import tomli_w
        return tomli_w.dumps(_without_none(self.to_dict()))


def _without_none(value: Any) -> Any:
    """``value`` with ``None`` entries left out (TOML has no null; a missing key means the default)."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_without_none(v) for v in value]
    return value


# -- parsing ---------------------------------------------------------------------------------
def load_recipe(source: str | Path | Recipe | dict, overrides: dict[str, Any] | list[str] | None = None) -> Recipe:
    """Read and validate a recipe file (or re-validate a :class:`Recipe`) and apply overrides."""
    if isinstance(source, Recipe):
        raw, text, path = source.to_dict(), None, source.path
    elif isinstance(source, dict):  # the recipe's tables in memory (a notebook)
        raw, text, path = copy.deepcopy(source), None, ""
    else:
        path = str(source)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise RecipeError(f"cannot read recipe {path}: {exc.strerror or exc}. Check the path.") from exc
        except UnicodeDecodeError as exc:
            raise RecipeError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); a "
                              f"recipe is a TOML text file: check the path, or save it as UTF-8.") from exc
        raw = _parse_toml(text, path)
    lines = _line_index(text) if text else {}
    for key, value in _normalise_overrides(overrides).items():
        _set_path(raw, key, value)
        lines[key] = "--set"
    _check_tree(raw, path, lines)
    recipe = _build(Recipe, raw, "", lines, path)
    recipe.path = path
    from zoo.recipe_checks import check_values  # the value rules, beside the parser
    check_values(recipe, lines, path)
    return recipe


def _parse_toml(text: str, path: str) -> dict:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}. Fix the syntax at that line.") from exc
    except RecursionError as exc:
        raise RecipeError(f"{path}: arrays or tables nest too deep to read; a recipe nests at most "
                          f"{MAX_DEPTH} levels.") from exc
    except ValueError as exc:  # an integer beyond Python's int-str limit (4300 digits)
        raise RecipeError(f"{path}: an integer has more digits than Python reads (sys.get_int_max_str_digits() = "
                          f"{sys.get_int_max_str_digits()}); write a number that fits in 64 bits.") from exc
    _check_tree(raw, path)
    return raw


def _check_tree(raw: Any, path: str, lines=None) -> None:
    """Every value is one TOML can hold (tables with string keys, arrays, strings, numbers, booleans,
    dates), nested at most :data:`MAX_DEPTH` deep, integers within 64 bits: the recipe can be written
    back to ``recipe.toml`` and read again. Iterative: no recursion for a 100k-deep array to exhaust."""
    stack = [("", raw, 0)]
    while stack:
        key, value, depth = stack.pop()
        where = _where(lines or {}, key, path) if key else (path or "recipe")
        if depth > MAX_DEPTH:
            raise RecipeError(f"{where}: {short_repr(key, 40, quote=False) or 'the recipe'} nests arrays or tables "
                              f"more than {MAX_DEPTH} levels deep; flatten the value.")
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise RecipeError(f"{where}: key {short_repr(k)} of {key or 'the recipe'} is not a string; "
                                      f"TOML keys are strings.")
                stack.append((f"{key}.{k}" if key else k, v, depth + 1))
        elif isinstance(value, (list, tuple)):
            stack.extend((key, v, depth + 1) for v in value)
        elif isinstance(value, int) and not isinstance(value, bool) and not -INT_LIMIT <= value < INT_LIMIT:
            raise RecipeError(f"{where}: {key} = {short_repr(value)} does not fit in 64 bits; use a smaller number.")
        elif not isinstance(value, (str, int, float, bool, type(None), datetime.date, datetime.time)):
            raise RecipeError(f"{where}: {key} is a {type(value).__name__}, which a TOML recipe cannot hold; "
                              f"use a string, number, boolean, array or table.")


def _normalise_overrides(overrides) -> dict[str, Any]:
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    out = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {item!r} is not of the form key.path=value (e.g. optim.lr=3e-4).")
        out[key.strip()] = parse_value(value.strip())
    return out


def parse_value(text: str) -> Any:
    """A TOML value (``3e-4``, ``true``, ``[1, 2]``, ``"x"``), or the bare text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError as exc:
        raise RecipeError(f"override value nests too deep; a recipe nests at most {MAX_DEPTH} levels.") from exc
    except ValueError as exc:  # an integer beyond Python's int-str limit
        raise RecipeError(f"override value {short_repr(text)} has more digits than Python reads "
                          f"({sys.get_int_max_str_digits()}); write a number that fits in 64 bits.") from exc


def _set_path(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise RecipeError(f"override {key!r}: {p!r} is a value, not a table.")
        node = nxt
    node[parts[-1]] = value


def _where(lines: dict[str, Any], key: str, path: str) -> str:
    probe = key
    while probe:
        if probe in lines:
            ln = lines[probe]
            return f"{path} (from --set)" if ln == "--set" else f"{path}:{ln}"
        probe = probe.rpartition(".")[0]
    return path or "recipe"


def _build(cls, raw: Any, prefix: str, lines, path):
    if not isinstance(raw, dict):
        raise RecipeError(f"{_where(lines, prefix, path)}: {prefix or 'recipe'} must be a table, got {_tname(raw)}.")
    valid = {f.name: f for f in fields(cls) if f.name != "path"}
    kwargs = {}
    for key, value in raw.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in valid:
            raise RecipeError(f"{_where(lines, full, path)}: unknown key {full!r}. Valid keys"
                              f"{' of [' + prefix + ']' if prefix else ''}: {', '.join(valid)}.")
        hint = typing.get_type_hints(cls)[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, full, lines, path)
        else:
            kwargs[key] = _check_type(hint, value, full, lines, path)
    return cls(**kwargs)


def _check_type(hint, value, key, lines, path):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        for a in args:
            if a is type(None) and value is None:
                return None
        hint, origin, args = args[0], typing.get_origin(args[0]), typing.get_args(args[0])
    base = origin or hint
    ok = isinstance(value, base) and not (base in (int, float) and isinstance(value, bool))
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            raise RecipeError(f"{_where(lines, key, path)}: {key!r} = {short_repr(value)} is too large for a "
                              f"float; use a smaller number.") from None
    if base is float and isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"{_where(lines, key, path)}: {key!r} must be a finite number, got {value!r}.")
    if base is float and isinstance(value, float):
        return value
    if not ok:
        raise RecipeError(f"{_where(lines, key, path)}: {key!r} must be {_tname_hint(hint)}, got {_tname(value)} "
                          f"{short_repr(value)}.")
    if base is list and args:
        return [_check_type(args[0], v, key, lines, path) for v in value]
    return value


def _tname(v: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a float"}.get(type(v), type(v).__name__)


def _tname_hint(hint) -> str:
    base = typing.get_origin(hint) or hint
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean (true/false)",
            int: "an integer", float: "a number"}.get(base, str(hint))


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEYLINE = re.compile(r"^\s*([A-Za-z0-9_.\"'-]+)\s*=")


def _line_index(text: str) -> dict[str, int]:
    """Map dotted key paths to the line (1-based) where they are written."""
    index: dict[str, int] = {}
    table = ""
    for n, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line)
        if m:
            table = m.group(1).replace('"', "").replace("'", "").replace(" ", "")
            index.setdefault(table, n)
            continue
        m = _KEYLINE.match(line)
        if m:
            key = m.group(1).replace('"', "").replace("'", "")
            index.setdefault(f"{table}.{key}" if table else key, n)
    return index
