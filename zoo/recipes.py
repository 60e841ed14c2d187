"""Recipes: strict TOML files validated into dataclasses.

Sections: ``[model]`` ``[data]`` ``[pairs]`` ``[objective]`` ``[optim]`` ``[run]`` (and
``[eval]``). An unknown key or a wrong type raises :class:`RecipeError` naming the key, its
line and the valid keys; ``--set a.b=value`` overrides are type-checked the same way.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import RecipeError


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
    num_workers: int = 0
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


@dataclass
class EvalSection:
    tasks: list[str] = field(default_factory=list)   # zero_shot | retrieval | linear_probe | alignment
    dataset: str = ""                 # default: the training dataset
    options: dict = field(default_factory=dict)
    best_metric: str = ""             # keep the best checkpoint by this metric (higher is better)


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
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RecipeError(f"{path}: not valid TOML: {exc}. Fix the syntax at that line.") from exc
    lines = _line_index(text) if text else {}
    for key, value in _normalise_overrides(overrides).items():
        _set_path(raw, key, value)
        lines[key] = "--set"
    recipe = _build(Recipe, raw, "", lines, path)
    recipe.path = path
    _check_values(recipe, lines, path)
    return recipe


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
        value = float(value)
    if base is float and isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"{_where(lines, key, path)}: {key!r} must be a finite number, got {value!r}.")
    if base is float and isinstance(value, float):
        return value
    if not ok:
        raise RecipeError(f"{_where(lines, key, path)}: {key!r} must be {_tname_hint(hint)}, got {_tname(value)} "
                          f"{value!r}.")
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


_CHOICES = {"optim.schedule": ("cosine", "linear", "constant"), "run.precision": ("fp32", "bf16", "fp16"),
            "run.on_nonfinite": ("stop", "skip")}
_POSITIVE = ("model.embed_dim", "data.batch_size", "optim.lr", "run.log_every", "run.keep_checkpoints")
_NON_NEGATIVE = ("data.num_workers", "optim.weight_decay", "optim.warmup_steps", "optim.grad_clip", "run.epochs",
                 "run.steps", "run.checkpoint_every", "run.eval_every", "optim.min_lr_ratio", "run.grad_cache_chunk")


def _get(recipe: Recipe, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(recipe, section), name)


def _check_values(recipe: Recipe, lines, path) -> None:
    for key, choices in _CHOICES.items():
        if _get(recipe, key) not in choices:
            raise RecipeError(f"{_where(lines, key, path)}: {key} = {_get(recipe, key)!r}; valid: {', '.join(choices)}.")
    for key in _POSITIVE:
        if not _get(recipe, key) > 0:
            raise RecipeError(f"{_where(lines, key, path)}: {key} must be > 0, got {_get(recipe, key)}.")
    for key in _NON_NEGATIVE:
        if _get(recipe, key) < 0:
            raise RecipeError(f"{_where(lines, key, path)}: {key} must be ≥ 0, got {_get(recipe, key)}.")
    if not recipe.data.dataset:
        raise RecipeError(f"{path}: [data] needs dataset = \"<name>\" (see `zoo list datasets`).")
    if not recipe.model.towers and not recipe.model.init:
        raise RecipeError(f"{path}: [model] needs towers ([model.towers.<name>] encoder = …) or init = \"<catalog name>\".")
    for name, spec in recipe.model.towers.items():
        if not isinstance(spec, dict) or "encoder" not in spec:
            raise RecipeError(f"{_where(lines, f'model.towers.{name}', path)}: tower {name!r} needs "
                              f"encoder = \"<name>\" (see `zoo list encoders`).")
    if len(recipe.optim.betas) != 2 or not all(0 <= b < 1 for b in recipe.optim.betas):
        raise RecipeError(f"{_where(lines, 'optim.betas', path)}: optim.betas must be two numbers in [0, 1).")
    _check_names(recipe, lines, path)


def _check_names(recipe: Recipe, lines, path) -> None:
    """run.name and tower keys become path components (runs/<name>, assets/<tower>): plain names only."""
    from .integrity import SAFE_KEY
    named = [("run.name", recipe.run.name)] if recipe.run.name else []
    named += [(f"model.towers.{k}", k) for k in recipe.model.towers]
    for key, name in named:
        if not SAFE_KEY.match(name) or ".." in name:
            raise RecipeError(f"{_where(lines, key, path)}: {key} "
                              f"= {name!r} is not a plain name (letters, digits, '_', '-', '.'; no '/', no '..'): it "
                              f"would write outside the run directory. Rename it (or use --run-dir for a location).")


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
