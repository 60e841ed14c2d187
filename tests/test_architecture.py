"""The architecture's "nevers", checked on the source with the AST (nothing under test is imported).

- ``zoo/`` imports no plugin package (every package under ``plugins/``): the core works without them.
- ``zoo/objectives/`` imports neither the trainer, a CLI, the evaluation, a modality (``zoo.data.vector``)
  nor a plugin: an objective is a function of embeddings.
- The core holds no modality name that a plugin registers (``"image"``, ``"text"``…): what a modality can
  do is a capability its plugin registers, never a name the core tests for.
- Only CLI modules (``zoo/cli.py``, ``zoo/<package>/cli.py``) print; everything below them logs.
- Nothing imports ``matplotlib.pyplot`` or calls ``matplotlib.use``: importing the zoo or training must
  not switch a notebook's backend.
- No raw built-in exception is raised in ``zoo/`` or ``plugins/``: every error raised on purpose is a
  ``zoo.errors.ZooError`` subclass that names the problem and the fix (bare ``raise`` and re-raising a
  caught name are fine).
- No source file is over 400 lines.

Each check reports every offence as ``path:line: what``. The detectors are tested on small snippets too
(``test_detector_finds_its_example``), so a check that silently finds nothing cannot pass unnoticed.
``ZOO_ARCH_ROOT=/some/checkout`` runs the checks on another tree (how they were shown to fail on the
layout before issue #14).
"""
from __future__ import annotations

import ast
import builtins
import functools
import os
import re
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("ZOO_ARCH_ROOT") or Path(__file__).resolve().parents[1])
MAX_LINES = 400

# (path, modality name) -> (how many times it may appear, why the name is the format's own, not a modality test)
MODALITY_NAME_ALLOWED = {
    ("zoo/hub/exporters/open_clip.py", "image"): (4, "an open_clip model is an image tower and a text tower by "
                                                    "definition; the exporter picks the tower of each"),
    ("zoo/hub/exporters/open_clip.py", "text"): (4, "as above: open_clip's text tower"),
    ("zoo/hub/exporters/sentence_transformers.py", "text"): (1, "a sentence-transformers model is a text tower"),
    ("zoo/cli.py", "image"): (1, "`zoo export --image` is the open_clip exporter's own argument (image=)"),
    ("zoo/cli.py", "text"): (1, "`zoo export --text` is the open_clip exporter's own argument (text=)"),
    ("zoo/retrieval/serve.py", "text"): (1, "the media answer's JSON key for a text/* body (a MIME type, read "
                                            "by static/app.js), not a modality"),
}
# path -> why it may be longer than MAX_LINES (empty: no file needs it)
LONG_FILES_ALLOWED: dict[str, str] = {}
# modules of the objectives' forbidden neighbours (prefixes); plugin packages are added below
OBJECTIVES_MUST_NOT_IMPORT = ("zoo.training", "zoo.cli", "zoo.evaluation", "zoo.data.vector")
BUILTIN_EXCEPTIONS = frozenset(n for n in dir(builtins)
                               if isinstance(getattr(builtins, n), type) and issubclass(getattr(builtins, n), BaseException))


# -- the source ---------------------------------------------------------------------------------------------
def sources(*top: str) -> dict[str, str]:
    """``{"zoo/x.py": text}`` for every Python file under the given top-level folders of ROOT."""
    return {p.relative_to(ROOT).as_posix(): p.read_text("utf-8")
            for t in top for p in sorted((ROOT / t).rglob("*.py"))}


@functools.cache
def parse(path: str, text: str) -> ast.Module:
    return ast.parse(text, filename=path)


def plugin_packages(root: Path = ROOT) -> list[str]:
    return sorted(p.name for p in (root / "plugins").iterdir() if (p / "__init__.py").is_file())


def module_name(path: str) -> str:
    """``zoo/data/pairs.py`` -> ``zoo.data.pairs``; ``plugins/zoo_text/bow.py`` -> ``zoo_text.bow``."""
    parts = Path(path).with_suffix("").parts
    parts = parts[1:] if parts[0] == "plugins" else parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: str, text: str) -> list[tuple[int, str]]:
    """Every module a file imports, anywhere in it (functions too), relative imports resolved."""
    out = []
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    for node in ast.walk(parse(path, text)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            mod = ".".join(x for x in (base, node.module or "") if x)
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]  # `from zoo import cli` is zoo.cli
    return out


def within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def registered_modalities(files: dict[str, str]) -> set[str]:
    """The names plugin packages pass to ``register`` inside their ``zoo_register_modalities`` hook."""
    names = set()
    for path, text in files.items():
        for fn in ast.walk(parse(path, text)):
            if isinstance(fn, ast.FunctionDef) and fn.name == "zoo_register_modalities":
                for call in ast.walk(fn):
                    if (isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Constant)
                            and isinstance(call.args[0].value, str)):
                        names.add(call.args[0].value)
    return names


def is_cli(path: str) -> bool:
    """``zoo/cli.py`` and a package's ``zoo/<package>/cli.py``: the only modules whose output is the user's."""
    return re.fullmatch(r"zoo/(\w+/)?cli\.py", path) is not None


# -- the detectors: each returns ["path:line: what", …] -------------------------------------------------------
def find_plugin_imports(files: dict[str, str], plugins: list[str]) -> list[str]:
    return [f"{p}:{line}: imports {name}" for p, text in files.items()
            for line, name in imports(p, text) if within(name, plugins)]


def find_objective_imports(files: dict[str, str], plugins: list[str]) -> list[str]:
    banned = (*OBJECTIVES_MUST_NOT_IMPORT, *plugins)
    return [f"{p}:{line}: imports {name}" for p, text in files.items() if p.startswith("zoo/objectives/")
            for line, name in imports(p, text) if within(name, banned) or name.split(".")[-1] == "cli"]


def find_modality_names(files: dict[str, str], modalities: set[str], allowed=None) -> list[str]:
    allowed = MODALITY_NAME_ALLOWED if allowed is None else allowed
    out = []
    for path, text in files.items():
        tree = parse(path, text)
        skip = docstrings(tree)
        hits = sorted((n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant)
                      and isinstance(n.value, str) and n.value in modalities and id(n) not in skip)
        for name in sorted({v for _, v in hits}):
            lines = [line for line, v in hits if v == name]
            if len(lines) > allowed.get((path, name), (0, ""))[0]:
                out += [f"{path}:{line}: {name!r}" for line in lines]
    return out


def find_prints(files: dict[str, str]) -> list[str]:
    return [f"{p}:{n.lineno}: print()" for p, text in files.items() if not is_cli(p)
            for n in ast.walk(parse(p, text))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"]


def find_pyplot(files: dict[str, str]) -> list[str]:
    out = []
    for p, text in files.items():
        for line, name in imports(p, text):
            if within(name, ["matplotlib.pyplot"]):
                out.append(f"{p}:{line}: imports {name}")
        for n in ast.walk(parse(p, text)):
            if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("use", "switch_backend")
                    and isinstance(n.func.value, ast.Name) and n.func.value.id in ("matplotlib", "mpl", "plt", "pyplot")):
                out.append(f"{p}:{n.lineno}: {n.func.value.id}.{n.func.attr}()")
    return out


def find_raw_raises(files: dict[str, str]) -> list[str]:
    out = []
    for p, text in files.items():
        for n in ast.walk(parse(p, text)):
            if isinstance(n, ast.Raise) and n.exc is not None:
                exc = n.exc.func if isinstance(n.exc, ast.Call) else n.exc
                if isinstance(exc, ast.Name) and exc.id in BUILTIN_EXCEPTIONS:
                    out.append(f"{p}:{n.lineno}: raise {exc.id}")
    return out


def find_long_files(files: dict[str, str]) -> list[str]:
    return [f"{p}:{len(text.splitlines())}: {len(text.splitlines())} lines > {MAX_LINES}"
            for p, text in files.items() if len(text.splitlines()) > MAX_LINES and p not in LONG_FILES_ALLOWED]


def report(offences: list[str], rule: str) -> str:
    return f"{rule} ({len(offences)}):\n  " + "\n  ".join(offences)


# -- the checks on the tree ---------------------------------------------------------------------------------
def test_zoo_imports_no_plugin_package():
    offences = find_plugin_imports(sources("zoo"), plugin_packages())
    assert not offences, report(offences, "zoo/ imports a plugin package; register a capability instead")


def test_objectives_import_no_trainer_cli_evaluation_modality_or_plugin():
    offences = find_objective_imports(sources("zoo"), plugin_packages())
    assert not offences, report(offences, "an objective imports the trainer, a CLI, the evaluation or a modality")


def test_core_holds_no_modality_name():
    modalities = registered_modalities(sources("plugins"))
    assert modalities, "no zoo_register_modalities hook found under plugins/"
    offences = find_modality_names(sources("zoo"), modalities)
    assert not offences, report(offences, f"the core names a plugin's modality ({sorted(modalities)}); ask the "
                                          f"modality's registered capabilities instead")


def test_modality_names_read_from_the_plugins_are_the_registered_ones():
    """The AST reading of the plugins' hooks finds every modality the registry has, but the core's own."""
    import zoo
    core = {e.name for e in zoo.registry().entries("modalities") if e.plugin.startswith("zoo.")}
    assert registered_modalities(sources("plugins")) == set(zoo.list_modalities()) - core


def test_only_cli_modules_print():
    offences = find_prints(sources("zoo", "plugins"))
    assert not offences, report(offences, "print() below the CLI; use logging (or return the text to the CLI)")


def test_nothing_switches_the_matplotlib_backend():
    offences = find_pyplot(sources("zoo", "plugins"))
    assert not offences, report(offences, "pyplot or a backend switch; draw on matplotlib.figure.Figure")


def test_no_raw_builtin_exception_is_raised():
    offences = find_raw_raises(sources("zoo", "plugins"))
    assert not offences, report(offences, "a raw built-in exception; raise a zoo.errors.ZooError subclass that "
                                          "names the problem and the fix")


def test_no_file_over_the_line_limit():
    offences = find_long_files(sources("zoo", "plugins"))
    assert not offences, report(offences, f"files over {MAX_LINES} lines; split them where the code belongs")


def test_allowlists_name_files_that_exist():
    for path, _ in MODALITY_NAME_ALLOWED:
        assert (ROOT / path).is_file(), path
    for path in LONG_FILES_ALLOWED:
        assert (ROOT / path).is_file(), path


# -- the detectors catch what they are for ------------------------------------------------------------------
EXAMPLES = {
    "plugin_import": (lambda f: find_plugin_imports(f, ["zoo_text"]),
                      {"zoo/a.py": "def f():\n    from zoo_text.bow import BowEncoder\n"}, ["zoo/a.py:2"]),
    "objective_import": (lambda f: find_objective_imports(f, ["zoo_text"]),
                         {"zoo/objectives/x.py": "import zoo.training.trainer\nfrom zoo import cli\n"
                                                 "from zoo.data import vector\nfrom ..evaluation import tasks\n"},
                         ["zoo/objectives/x.py:1", "zoo/objectives/x.py:2", "zoo/objectives/x.py:3",
                          "zoo/objectives/x.py:4"]),
    "modality_name": (lambda f: find_modality_names(f, {"text"}, allowed={}),
                      {"zoo/e.py": '"""text"""\ndef f(m):\n    """text"""\n    return m == "text"\n'}, ["zoo/e.py:4"]),
    "print": (find_prints, {"zoo/a.py": "print('x')\n", "zoo/hub/cli.py": "print('ok')\n", "zoo/cli.py": "print()\n",
                            "plugins/zoo_x/cli.py": "print('no')\n"}, ["zoo/a.py:1", "plugins/zoo_x/cli.py:1"]),
    "pyplot": (find_pyplot, {"zoo/p.py": "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"},
               ["zoo/p.py:2", "zoo/p.py:3"]),
    "raw_raise": (find_raw_raises,
                  {"zoo/r.py": "def f(x):\n    try:\n        g()\n    except ValueError as e:\n        raise e\n"
                               "    except KeyError:\n        raise\n    raise NotImplementedError\n"
                               "def h():\n    raise ValueError('x')\n"}, ["zoo/r.py:8", "zoo/r.py:10"]),
    "long_file": (find_long_files, {"zoo/l.py": "x = 1\n" * (MAX_LINES + 1), "zoo/s.py": "x = 1\n" * MAX_LINES},
                  [f"zoo/l.py:{MAX_LINES + 1}"]),
}


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_detector_finds_its_example(kind):
    detect, files, expected = EXAMPLES[kind]
    assert sorted(o.split(": ", 1)[0] for o in detect(files)) == sorted(expected)
