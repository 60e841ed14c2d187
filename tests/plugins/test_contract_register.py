"""register() accepts exactly the documented keywords per kind; plugins add evaluation tasks and commands."""
from __future__ import annotations

import types

import pytest
import torch

import zoo
from zoo import hookimpl
from zoo.cli import main
from zoo.errors import PluginError, RecipeError
from zoo.evaluation.runner import best_mode, eval_problems, task_options
from zoo.plugins import SIGNATURES


def _module(name: str, **hooks) -> types.ModuleType:
    mod = types.ModuleType(name)
    for k, v in hooks.items():
        setattr(mod, k, v)
    return mod


def test_a_misspelt_keyword_disables_the_plugin_and_names_the_fix(fresh_plugins):
    @hookimpl
    def zoo_register_objectives(register):
        register("typo_loss", torch.nn.Identity, citaton="Someone 2024")

    with pytest.warns(RuntimeWarning, match="typo_plugin"):
        info = fresh_plugins.register(_module("typo_plugin", zoo_register_objectives=zoo_register_objectives))
    assert not info.ok
    for part in ("typo_plugin", "objectives", "'citaton'", "did you mean 'citation'", "citation, description, aliases"):
        assert part in info.error, part
    assert "typo_loss" not in zoo.list_objectives() and "clip" in zoo.list_objectives()
    assert isinstance(PluginError("x"), zoo.errors.ZooError)


@pytest.mark.parametrize("call, message", [
    (lambda r: r("blob", load=str, collate=list, thumbnale=None), "did you mean 'thumbnail'"),
    (lambda r: r("blob", load=str), "needs collate="),
    (lambda r: r("blob", load=str, collate=list, count=3), "count= must be callable"),
    (lambda r: r("blob", str, collate=list, load=str), "load twice"),
])
def test_modality_registration_is_checked(fresh_plugins, call, message):
    @hookimpl
    def zoo_register_modalities(register):
        call(register)

    with pytest.warns(RuntimeWarning):
        info = fresh_plugins.register(_module("bad_modality", zoo_register_modalities=zoo_register_modalities))
    assert message in info.error and "blob" not in zoo.list_modalities()


def test_every_kind_documents_its_signature():
    assert set(SIGNATURES) == set(zoo.registry().tables)
    assert SIGNATURES["objectives"].render() == "register(name, make, *, citation, description, aliases)"
    assert "prompts" in SIGNATURES["modalities"].keywords and "slice" in SIGNATURES["modalities"].keywords


# -- a plugin's evaluation task ---------------------------------------------------------------------------
def mean_norm(model, dataset, *, field: str = "x", scale: float = 1.0):
    """The mean L2 norm of the raw vectors of one field, times ``scale`` (no embedding: a cheap task)."""
    rows = torch.stack([torch.as_tensor(dataset[i][field], dtype=torch.float32) for i in range(len(dataset))])
    return {"norm": scale * rows.norm(dim=1).mean().item(), "rows": len(dataset)}


@hookimpl
def zoo_register_eval_tasks(register):
    register("mean_norm", mean_norm, metrics=r"norm|rows", lower_is_better=r"norm",
             choices={"field": ("x", "y")}, description="a test task")


def test_a_plugin_task_runs_through_evaluate_and_recipe_checks(fresh_plugins, tiny_model):
    zoo.register_plugin(_module("norms", zoo_register_eval_tasks=zoo_register_eval_tasks))
    data = [{"x": [3.0, 4.0] + [0.0] * 14, "y": [0.0] * 16} for _ in range(4)]
    from zoo.data.datasets import ListDataset
    ds = ListDataset(data, fields={"x": "vector", "y": "vector"})
    assert zoo.evaluate(tiny_model, ds, task="mean_norm", scale=2.0) == {"norm": 10.0, "rows": 4}
    assert task_options("mean_norm") == ["field", "scale"]
    with pytest.raises(RecipeError, match="no option.*'k'.*valid: field, scale"):
        zoo.evaluate(tiny_model, ds, task="mean_norm", k=3)
    assert eval_problems(["mean_norm"], {"mean_norm": {"scale": 2.0}}, "mean_norm/norm") == []
    problems = dict(eval_problems(["mean_nrom"], {"mean_norm": {"field": "z"}}, ""))
    assert "did you mean 'mean_norm'" in problems["eval.tasks"] and "valid: x, y" in problems["eval.options.mean_norm.field"]
    assert eval_problems(["mean_norm"], {}, "mean_norm/top1")[0][0] == "eval.best_metric"
    assert best_mode("mean_norm/norm") == "min" and best_mode("mean_norm/rows") == "max"
    from zoo.evaluation.runner import run_tasks
    assert run_tasks(tiny_model, ds, ["mean_norm"], {"mean_norm": {"field": "y"}}) == {"mean_norm/norm": 0.0,
                                                                                      "mean_norm/rows": 4.0}


# -- a plugin's commands ----------------------------------------------------------------------------------
def _commands_plugin(calls: list):
    def add_hello(parser):
        parser.add_argument("who")
        parser.add_argument("--times", type=int, default=1)

    def hello(args):
        calls.append((args.who, args.times))
        print(f"hello {args.who}" * args.times)

    def explode(args):
        raise RuntimeError("kaboom")

    def bad_arguments(parser):
        raise ValueError("no parser for you")

    @hookimpl
    def zoo_register_commands(register):
        register("hello", hello, add_arguments=add_hello, help="say hello (test plugin)")
        register("explode", explode, help="always fails")
        register("broken-args", hello, add_arguments=bad_arguments)
        register("train", hello, help="a name the zoo already uses")

    return _module("greeter", zoo_register_commands=zoo_register_commands)


def test_plugin_commands_run_and_fail_alone(fresh_plugins, capsys):
    calls: list = []
    zoo.register_plugin(_commands_plugin(calls))
    with pytest.warns(RuntimeWarning) as warned:
        with pytest.raises(SystemExit):
            main(["--help"])
    out = capsys.readouterr().out
    assert "hello" in out and "say hello (test plugin)" in out and "explode" in out
    assert "broken-args" not in out  # its add_arguments raised: only it is dropped
    messages = " ".join(str(w.message) for w in warned)
    assert "'greeter'" in messages and "broken-args" in messages and "'train'" in messages
    with pytest.warns(RuntimeWarning):
        assert main(["hello", "plugins", "--times", "2"]) == 0
    assert calls == [("plugins", 2)] and "hello pluginshello plugins" in capsys.readouterr().out
    with pytest.warns(RuntimeWarning):
        assert main(["explode"]) == 1
    err = capsys.readouterr().err
    assert "'explode' of plugin 'greeter' failed: RuntimeError: kaboom" in err and "internal error" not in err
    with pytest.warns(RuntimeWarning):
        assert main(["list", "commands"]) == 0  # the other commands keep working
    listed = capsys.readouterr().out
    assert "hello" in listed and "[greeter]" in listed
    with pytest.warns(RuntimeWarning):
        assert main(["plugins"]) == 0
    shown = capsys.readouterr().out
    assert "commands: hello, explode, broken-args, train" in shown and "eval_tasks: zero_shot, retrieval" in shown


def test_zoo_info_of_a_modality_shows_its_capabilities_and_its_load_doc(capsys):
    assert main(["info", "text"]) == 0
    out = capsys.readouterr().out
    assert "can: render, prompts" in out and "A registered modality" not in out


def test_register_plugin_at_run_time_raises_the_broken_contract(fresh_plugins):
    """zoo.register_plugin is called by the plugin's author: a misspelt keyword raises there (entry points
    are disabled and reported instead, above), and nothing of the plugin stays registered."""
    import zoo
    from zoo.errors import PluginError

    class Typo:
        @zoo.hookimpl
        def zoo_register_objectives(register):
            register("typo_loss", lambda **k: None, citaton="x")

    with pytest.raises(PluginError, match="did you mean 'citation'"):
        zoo.register_plugin(Typo, name="typo_at_runtime")
    assert "typo_loss" not in zoo.list_objectives()
    assert not fresh_plugins.pm.has_plugin("typo_at_runtime")
