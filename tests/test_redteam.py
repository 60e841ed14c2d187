"""Red team: the inputs that used to end in a raw traceback (or, worse, in a run that lost its model)
are each a documented ZooError that says what to fix, raised before step 0; the CLI prints one line
for a ZooError and asks for a bug report (with the traceback) for anything else."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo
from zoo.errors import OptionError, RecipeError, UnknownNameError, ZooError
from zoo.recipes import load_recipe
from zoo.training import preflight
from zoo.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.toml"
TINY = {"run.epochs": 1, "run.log_every": 1, "run.progress": False, "data.options.size": 64, "data.batch_size": 32,
        "optim.warmup_steps": 0}
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def small_machine(monkeypatch):
    """A machine with 64 MiB free of 128 MiB, so that the memory guard decides fast and the same everywhere."""
    monkeypatch.setattr(preflight, "memory_bytes", lambda: (64 * 2**20, 128 * 2**20))


def build(tmp_path, **over):
    return Trainer(load_recipe(QUICKSTART, {**TINY, **over}), run_dir=tmp_path / "run")


# -- the recipe file itself -----------------------------------------------------------------
@pytest.mark.parametrize("data, match", [
    (b"\xff\xfe[model]\n", "not UTF-8 text.*save it as UTF-8"),
    (bytes(range(256)) * 4, "not UTF-8 text"),
    (b"a = 1\x00\n", "not valid TOML"),
    (("a = " + "[" * 100_000 + "]" * 100_000).encode(), "nest too deep.*at most 32"),
    (("a = " + "[" * 40 + "]" * 40).encode(), "more than 32 levels deep; flatten"),
    (b"[run]\nseed = " + b"9" * 5000 + b"\n", "more digits than Python reads.*fits in 64 bits"),
    (b"a = 0x" + b"f" * 5000 + b"\n", r"a = <int of 20000 bits> does not fit in 64 bits"),
])
def test_unreadable_recipe_files(tmp_path, data, match):
    p = tmp_path / "r.toml"
    p.write_bytes(data)
    with pytest.raises(RecipeError, match=match):
        load_recipe(p)


@pytest.mark.parametrize("override, match", [
    (["run.seed=" + "9" * 5000], "more digits than Python reads"),
    (["data.options.x=" + "[" * 5000 + "]" * 5000], "nest"),
    ({"run.seed": 10**5000}, r"run.seed = <int of \d+ bits> does not fit in 64 bits"),
    ({"data.options.size": 10**30}, "data.options.size = 1000.* does not fit in 64 bits"),
    ({"optim.lr": 10**400}, "optim.lr = .* does not fit in 64 bits"),
    ({"data.options": {1: 2}}, "key 1 of data.options is not a string"),
    ({"data.options.f": object()}, "data.options.f is a object, which a TOML recipe cannot hold"),
])
def test_unreadable_overrides(override, match):
    with pytest.raises(RecipeError, match=match):
        load_recipe(QUICKSTART, override)


# -- values out of range: refused when the recipe is read ---------------------------------------
@pytest.mark.parametrize("key, value, match", [
    ("optim.lr", 1e308, r"optim.lr must be ≤ 10, got 1e\+308: AdamW"),
    ("optim.eps", -1, "optim.eps must be > 0"),
    ("optim.min_lr_ratio", 2.0, "optim.min_lr_ratio must be ≤ 1.*decays from lr"),
    ("optim.weight_decay", 1e6, "weight_decay × optim.lr must be < 1"),
    ("run.seed", 2**64, "run.seed = 18446744073709551616 does not fit in 64 bits"),
    ("run.seed", 2**40, "run.seed must be ≤ 4294967295.*below 2\\*\\*32"),
    ("run.seed", -1, "run.seed must be ≥ 0"),
    ("run.max_skips", -1, "run.max_skips must be ≥ 0"),
    ("run.epochs", 0, "nothing to train; set run.epochs ≥ 1 or run.steps ≥ 1"),
    ("run.device", "tpu", "run.device = 'tpu'; valid: auto, cpu, cuda, cuda:<index>, mps"),
    ("run.device", "meta", "run.device = 'meta'; valid"),
    ("eval.best_mode", "biggest", "valid: auto, max, min"),
])
def test_out_of_range_values(key, value, match):
    with pytest.raises(RecipeError, match=match):
        load_recipe(QUICKSTART, {key: value})


def test_warmup_beyond_the_run():
    with pytest.raises(RecipeError, match=r"warmup_steps = 50 is beyond the run's 20 steps.*\(e.g. 2\)"):
        load_recipe(QUICKSTART, {"run.steps": 20, "optim.warmup_steps": 50})


def test_warmup_beyond_an_epoch_counted_run(tmp_path):
    """Without run.steps the length is only known from the dataset: refused when the trainer is built."""
    with pytest.raises(RecipeError, match="warmup_steps = 100 is beyond the run's 2 steps"):
        build(tmp_path, **{"optim.warmup_steps": 100})
    assert not list((tmp_path / "run").glob("checkpoints/*")) and not (tmp_path / "run" / "model.safetensors").exists()


# -- [eval]: every mistake is found before training ---------------------------------------------
@pytest.mark.parametrize("over, match", [
    ({"eval.tasks": ["retrival"]}, "unknown evaluation task 'retrival'; did you mean 'retrieval'"),
    ({"eval.tasks": ["retrieval"], "eval.options": {"retrieval": {"matchh": "label"}}},
     "eval.options.retrieval.matchh — retrieval has no option 'matchh'; valid: batch_size, fields, match, label"),
    ({"eval.tasks": ["retrieval"], "eval.options": {"retrieval": {"match": "class"}}},
     "eval.options.retrieval.match = 'class'; valid: auto, index, label"),
    ({"eval.tasks": ["retrieval"], "eval.options": {"zero_shoot": {"score": "mip"}}},
     "options for 'zero_shoot', which is not an evaluation task"),
    ({"eval.tasks": [], "eval.options": {"zero_shot": {"score": "mpi"}}}, "zero_shot.score = 'mpi'; valid: mip"),
    ({"eval.tasks": ["retrieval"], "eval.best_metric": "retrieval/top1"}, "is not a metric the tasks log"),
    ({"eval.tasks": ["retrieval"], "eval.best_metric": "zero_shot/top1"}, "is not a metric the tasks log"),
    ({"eval.best_metric": "zero_shot/top1"}, "eval.tasks is empty"),
])
def test_eval_section_is_checked_when_read(over, match):
    with pytest.raises(RecipeError, match=match):
        load_recipe(QUICKSTART, over)


def test_eval_dataset_is_built_before_step_0(tmp_path):
    with pytest.raises(UnknownNameError, match="synthetic-pairz"):
        build(tmp_path, **{"eval.tasks": ["retrieval"], "eval.dataset": "synthetic-pairz"})
    with pytest.raises(ZooError, match="splits 'train' and 'test', not 'tset'"):
        build(tmp_path, **{"eval.tasks": ["retrieval"], "data.eval_split": "tset"})
    with pytest.raises(RecipeError, match=r"names field\(s\) \['image', 'text'\] that the evaluation dataset does "
                                          r"not have; its fields are \['x', 'y'\]"):
        build(tmp_path, **{"eval.tasks": ["retrieval"], "eval.best_metric": "retrieval/image->text R@1"})
    build(tmp_path, **{"eval.tasks": ["retrieval", "alignment"], "eval.best_metric": "alignment/alignment x-y"})


def test_best_mode_is_inferred_and_can_be_set():
    assert zoo.evaluation.tasks.best_mode("retrieval/x->y mean_rank") == "min"
    assert zoo.evaluation.tasks.best_mode("alignment/alignment x-y") == "min"
    assert zoo.evaluation.tasks.best_mode("retrieval/x->y R@1") == "max"
    assert zoo.evaluation.tasks.best_mode("zero_shot/top1") == "max"
    assert zoo.evaluation.tasks.best_mode("retrieval/x->y R@1", "min") == "min"


def test_best_checkpoint_by_a_lower_is_better_metric(tmp_path):
    """mean_rank: the kept 'best' is the evaluation with the lowest rank (the old trainer kept the highest)."""
    metric = "retrieval/x->y mean_rank"
    over = {"run.eval_every": 1, "eval.tasks": ["retrieval"], "eval.best_metric": metric, "optim.lr": 0.05,
            "data.options.size": 128}
    result = zoo.train(QUICKSTART, overrides={**TINY, **over}, run_dir=tmp_path / "run")
    rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [(r["step"], r["eval"][metric]) for r in rows if "eval" in r]
    card = (result.run_dir / "best" / "README.md").read_text()
    kept = json.loads(card.split("```json", 1)[1].split("```", 1)[0])   # the metrics the best checkpoint records
    lowest = min(rank for _, rank in evals)
    assert len({rank for _, rank in evals}) > 1
    assert kept[metric] == lowest and kept["step"] == next(step for step, rank in evals if rank == lowest)


# -- constructors: their errors name the recipe key ------------------------------------------
@pytest.mark.parametrize("key, value, match", [
    ("model.towers.x.hidden", -5, r"model.towers.x.hidden = -5: .*hidden must be an integer ≥ 1"),
    ("model.towers.x.layers", 0, r"model.towers.x.layers = 0: .*layers must be an integer ≥ 1"),
    ("model.towers.y.dropout", 2.0, r"model.towers.y.dropout = 2.0: .*dropout must be a number in \[0, 1\)"),
    ("objective.options.label_smoothing", 2, r"objective.options.label_smoothing = 2: .*\[0, 1\)"),
    ("objective.options.chunk_size", -3, r"objective.options.chunk_size = -3: .*positive int"),
    ("data.options.classes", -1, r"data.options: dataset 'synthetic-pairs' could not be built with .*classes = -1"),
    ("pairs.options.fields", 3, r"pairs.options: pair strategy 'paired' could not be built with fields = 3"),
])
def test_constructor_errors_name_the_recipe_key(tmp_path, key, value, match):
    with pytest.raises(RecipeError, match=match):
        build(tmp_path, **{key: value})


def test_objective_options_from_python_are_option_errors():
    with pytest.raises(OptionError, match=r"label_smoothing must be a number in \[0, 1\)") as err:
        zoo.create_objective("clip", label_smoothing=2)
    assert err.value.option == "label_smoothing" and isinstance(err.value, ValueError)


def test_huge_sizes_are_refused_before_allocating(tmp_path, small_machine):
    with pytest.raises(RecipeError, match=r"\[model\] needs a tensor of shape \(10000000000, 64\).*nothing was "
                                          r"allocated.*model.embed_dim"):
        build(tmp_path, **{"model.embed_dim": 10**10})
    with pytest.raises(RecipeError, match=r"\[data\] needs a tensor"):
        build(tmp_path, **{"data.options.size": 10**9})


def test_a_device_this_machine_lacks(tmp_path, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(RecipeError, match="run.device = 'cuda' but no CUDA device is available; use 'cpu'"):
        build(tmp_path, **{"run.device": "cuda"})
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    with pytest.raises(RecipeError, match=r"'cuda:3' but this machine has 1 CUDA device\(s\)"):
        preflight.check_device("cuda:3")


def test_num_workers_far_above_the_cpus_is_capped(caplog):
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert preflight.worker_count(100_000) == cpus
    assert "data.num_workers = 100000 is more than the" in caplog.text
    assert preflight.worker_count(0) == 0


# -- no work lost: the model is saved before the final evaluation ------------------------------
def test_final_checkpoint_is_written_before_the_final_evaluation(tmp_path, monkeypatch):
    import zoo.evaluation.runner

    def broken(*a, **k):
        raise RuntimeError("evaluation broke")
    monkeypatch.setattr(zoo.evaluation.runner, "run_tasks", broken)
    over = {**TINY, "eval.tasks": ["retrieval"]}
    with pytest.raises(RuntimeError, match="evaluation broke"):
        zoo.train(QUICKSTART, overrides=over, run_dir=tmp_path / "run")
    saved = [int(p.name.split("-")[1]) for p in (tmp_path / "run" / "checkpoints").glob("step-*")]
    assert saved == [2]  # the trained weights survived the failed evaluation
    monkeypatch.undo()
    done = zoo.train(QUICKSTART, overrides=over, run_dir=tmp_path / "run", resume=True)
    assert done.metrics["steps"] == 2 and (tmp_path / "run" / "model.safetensors").exists()


# -- the command line ----------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "zoo.cli", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"),
                                                       os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_cli_zoo_error_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe garbage")
    out = _cli("train", str(bad))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("zoo: error:") and len(out.stderr.strip().splitlines()) == 1
    assert "not UTF-8" in out.stderr


def test_cli_other_errors_ask_for_a_bug_report_with_the_traceback(capsys, monkeypatch):
    from zoo import cli

    def boom(args):
        raise KeyError("internal")
    monkeypatch.setattr(cli, "cmd_list", boom)
    assert cli.main(["list"]) == 1
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith("zoo: internal error: KeyError") and "bug" in first and "report" in first
    assert "Traceback (most recent call last)" in err and "KeyError: 'internal'" in err


def test_cli_main_in_process_maps_errors(capsys, tmp_path):
    from zoo.cli import main
    assert main(["train", str(QUICKSTART), "--set", "run.device=tpu"]) == 2
    err = capsys.readouterr().err
    assert "run.device = 'tpu'" in err and "Traceback" not in err


# -- fuzzing: only documented errors ----------------------------------------------------------
def _recipe_keys() -> list[str]:
    import dataclasses

    from zoo.recipes import Recipe
    return [f"{section}.{f.name}" for section, value in vars(Recipe()).items() if dataclasses.is_dataclass(value)
            for f in dataclasses.fields(value)]


nasty = st.one_of(
    st.integers(-2**70, 2**70), st.sampled_from([0, -1, 2**63, 2**64, 10**10, 10**5000]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, 5e-324]),
    st.booleans(), st.text(max_size=8), st.sampled_from(["tpu", "meta", "cuda:99", "", "\x00", "ü" * 3]),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.integers(1, 200).map(lambda n: [[]] if n < 2 else eval("[" * n + "]" * n)))


@FUZZ
@given(key=st.sampled_from(_recipe_keys()), value=nasty)
def test_fuzz_any_recipe_value_is_a_recipe_or_a_recipe_error(key, value):
    try:
        load_recipe(QUICKSTART, {key: value})
    except RecipeError:
        pass


BUILD_KEYS = ["model.embed_dim", "model.towers.x.hidden", "model.towers.x.layers", "model.towers.y.out_dim",
              "model.towers.y.dropout", "model.logit_scale", "objective.options.label_smoothing",
              "objective.options.chunk_size", "data.batch_size", "data.options.size", "data.options.dim",
              "data.num_workers", "pairs.options.fields", "optim.lr", "optim.warmup_steps", "run.grad_cache_chunk"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(BUILD_KEYS), value=st.one_of(st.integers(-2**40, 2**40), st.floats(-1e6, 1e6),
                                                         st.sampled_from([0, -5, 10**10, 2.0, "x", [1]])))
def test_fuzz_trainer_build_raises_only_zoo_errors(tmp_path, small_machine, key, value):
    try:
        build(tmp_path, **{key: value})
    except ZooError:
        pass


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(BUILD_KEYS + ["run.seed", "run.device", "run.epochs", "eval.tasks", "eval.best_metric",
                                         "optim.min_lr_ratio", "run.max_skips", "nope.x"]),
       text=st.one_of(st.text(max_size=12), st.sampled_from(["1e308", "-5", "0", "2.0", "9" * 5000, "[" * 3000,
                                                             "\"tpu\"", "[\"retrival\"]", "\"zero_shot/top1\""])))
def test_fuzz_cli_train_exits_0_or_2_without_a_traceback(tmp_path, small_machine, monkeypatch, capsys, key, text):
    """``zoo train --set key=text``: trains (here: stops after building the trainer) or prints one error line."""
    from zoo import cli
    from zoo.training import trainer
    monkeypatch.setattr(trainer.Trainer, "fit", lambda self: trainer.TrainResult(self.run_dir, {}))
    sets = [f"{k}={v if not isinstance(v, bool) else str(v).lower()}" for k, v in TINY.items()]
    rc = cli.main(["train", str(QUICKSTART), "--run-dir", str(tmp_path / "run"), *(f"--set={s}" for s in sets),
                   f"--set={key}={text}"])
    err = capsys.readouterr().err
    assert rc in (0, 2) and "Traceback" not in err
    assert rc == 0 or "zoo: error:" in err


def test_a_number_where_a_name_belongs(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown dataset field 1"):
        build(tmp_path, **{"pairs.options.fields": [1, "y"]})
