"""The trainer's shape (issue #14 item 2), checked on its source: it reads top to bottom, its state is
one TrainState created in __init__, checkpointing is composed rather than inherited, and the temperature
and bias travel as their own values. Each AST detector is first shown to catch what it looks for."""
from __future__ import annotations

import ast
import inspect
import json
import textwrap
from pathlib import Path

import pytest

import zoo
from zoo.recipes import load_recipe
from zoo.training import checkpointing, step, trainer
from zoo.training.checkpointing import Checkpointer
from zoo.training.runlog import RunLog
from zoo.training.step import ForwardBackward
from zoo.training.trainer import Trainer

ZOO = Path(zoo.__file__).parent
TRAINING = ZOO / "training"
QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _class(source: str, name: str) -> ast.ClassDef:
    return next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef) and n.name == name)


def _methods(cls: ast.ClassDef) -> list[ast.FunctionDef]:
    return [n for n in cls.body if isinstance(n, ast.FunctionDef)]


def _stores_on_self(fn: ast.FunctionDef) -> list[str]:
    """``self.x`` written anywhere in ``fn`` (=, +=, tuple targets, ``with … as self.x``, ``for self.x``,
    nested functions), plus ``setattr(self, …)`` and ``self.__dict__``."""
    found = []
    for n in ast.walk(fn):
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self":
            if isinstance(n.ctx, ast.Store) or n.attr == "__dict__":
                found.append(n.attr)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "setattr" and n.args \
                and isinstance(n.args[0], ast.Name) and n.args[0].id == "self":
            found.append("setattr")
    return found


def _attributes_set_after_init(cls: ast.ClassDef) -> dict[str, list[str]]:
    return {fn.name: s for fn in _methods(cls) if fn.name != "__init__" and (s := _stores_on_self(fn))}


def _read_but_never_set(cls: ast.ClassDef) -> set[str]:
    """``self.x`` read in a method although neither ``__init__`` sets it nor the class defines it:
    an attribute someone else is expected to provide (a mixin's coupling by convention)."""
    init = next(fn for fn in _methods(cls) if fn.name == "__init__")
    defined = set(_stores_on_self(init)) | {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    read = {n.attr for fn in _methods(cls) for n in ast.walk(fn)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"}
    return read - defined


EXAMPLE = textwrap.dedent("""
    class Leaky:
        def __init__(self):
            self.a = 1
        def later(self):
            self.b = 2
        def unpacked(self):
            self.c, self.d = 3, 4
        def opened(self, path):
            with open(path) as self.f:
                pass
        def by_name(self):
            setattr(self, "e", 5)
        def through_state(self):
            self.a.x = 6          # writes an attribute of an attribute: allowed
        def conventional(self):
            return self.step      # nothing sets it here
""")


def test_the_detectors_catch_what_they_look_for():
    leaky = _class(EXAMPLE, "Leaky")
    assert _attributes_set_after_init(leaky) == {"later": ["b"], "unpacked": ["c", "d"], "opened": ["f"],
                                                 "by_name": ["setattr"]}
    assert _read_but_never_set(leaky) == {"step", "b", "c", "d", "f"}


def test_trainer_state_is_one_train_state_created_in_init():
    cls = _class(inspect.getsource(trainer), "Trainer")
    init = next(fn for fn in _methods(cls) if fn.name == "__init__")
    assigned = [n for n in ast.walk(init) if isinstance(n, ast.Assign) and any(
        isinstance(t, ast.Attribute) and t.attr == "state" for t in n.targets)]
    assert len(assigned) == 1 and isinstance(assigned[0].value, ast.Call)
    assert assigned[0].value.func.id == "TrainState"
    assert _attributes_set_after_init(cls) == {}  # every later change goes through self.state
    assert _read_but_never_set(cls) == set()


@pytest.mark.parametrize("owner", [Checkpointer, RunLog, ForwardBackward])
def test_collaborators_use_only_what_they_are_handed(owner):
    """No attribute by convention: each collaborator reads only what its own ``__init__`` stored."""
    assert _read_but_never_set(_class(inspect.getsource(inspect.getmodule(owner)), owner.__name__)) == set()
    assert "trainer" not in inspect.signature(owner).parameters


def test_checkpointing_is_composed_not_inherited():
    assert Trainer.__bases__ == (object,)
    assert not [c for c in Trainer.__mro__ if c.__module__ == checkpointing.__name__]


def test_the_entry_point_comes_first_and_the_loop_fits_on_a_screen():
    tree = ast.parse(inspect.getsource(trainer))
    top = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    assert top.index("train") == 0 and top.index("train") < top.index("Trainer")
    cls = _class(inspect.getsource(trainer), "Trainer")
    names = [fn.name for fn in _methods(cls)]
    assert names[:2] == ["__init__", "fit"] and names.index("fit") < names.index("train_step")
    fit = next(fn for fn in _methods(cls) if fn.name == "fit")
    assert fit.end_lineno - fit.lineno + 1 <= 60


def test_no_magic_keys_for_the_temperature_and_bias():
    """The temperature and bias are Encoded.logit_scale / .logit_bias, not dictionary keys."""
    magic = ["__" + "scale__", "__" + "bias__"]  # spelled apart so that this file does not match itself
    hits = [f"{p.relative_to(ZOO.parent)}: {m}" for p in ZOO.rglob("*.py") for m in magic if m in p.read_text("utf-8")]
    assert hits == []
    assert list(step.Encoded._fields) == ["embeddings", "logit_scale", "logit_bias"]


def test_files_stay_under_400_lines():
    long = {p.name: n for p in TRAINING.glob("*.py") if (n := len(p.read_text("utf-8").splitlines())) > 400}
    assert long == {}


def test_a_checkpoint_writes_the_train_state_as_the_old_code_did(tmp_path):
    """state.json: the keys (in order) of a checkpoint written before the move, the values from TrainState."""
    old = json.loads((FIXTURES / "run-before-layers" / "checkpoints" / "step-00000002" / "state.json").read_text())
    t = Trainer(load_recipe(QUICKSTART, {"run.epochs": 1, "run.log_every": 2, "run.progress": False,
                                         "data.options.size": 256, "data.batch_size": 32,
                                         "optim.warmup_steps": 8}), run_dir=tmp_path)
    t.state.stop_at_step = 3
    t.fit()
    meta = json.loads((tmp_path / "checkpoints" / "step-00000003" / "state.json").read_text())
    s = t.state
    assert list(meta) == list(old)
    assert (meta["step"], meta["epoch"], meta["batch_in_epoch"], meta["skipped"], meta["best"]) == \
        (s.step, s.epoch, s.batch_in_epoch, s.skipped, s.best) == (3, 0, 3, 0, float("-inf"))
    assert meta["last_log"] == s.last_log and s.last_log["step"] == 2  # the last logged line (log_every = 2)
    assert meta["total_steps"] == t.total_steps == 8 and meta["dataset_len"] == len(t.dataset) == 256


def test_the_temperature_and_bias_leave_the_ddp_module_as_traceable_values(tmp_path):
    """DDP finds the parameters a forward used from its outputs' grad_fn: the temperature and bias come
    out as their own tensors with one (a bare parameter has none and DDP would count it unused)."""
    t = Trainer(load_recipe(QUICKSTART, {"run.progress": False, "data.options.size": 64, "data.batch_size": 16,
                                         "objective.name": "siglip", "model.logit_bias": -10.0}), run_dir=tmp_path)
    encoded = t.forward_backward.encode(next(t.batches()).views)
    assert sorted(encoded.embeddings) == ["x", "y"]
    assert encoded.logit_scale.shape == encoded.logit_bias.shape == ()
    assert encoded.logit_scale.grad_fn is not None and encoded.logit_bias.grad_fn is not None
    t.close()
