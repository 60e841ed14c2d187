"""The example third-party plugin, installed for real with pip into a temporary target."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "zoo-plugin-example"

PROBE = """
import json, zoo
info = zoo.get_plugin_manager().plugins.get("example")
out = {"plugin": bool(info and info.ok), "source": info.source if info else "",
       "modalities": zoo.list_modalities(), "encoders": zoo.list_encoders(),
       "pairs": zoo.list_pair_strategies(), "datasets": zoo.list_datasets(),
       "tasks": zoo.registry().names("eval_tasks"), "commands": zoo.registry().names("commands")}
if out["plugin"]:
    r = zoo.train(%r, run_dir=%r, progress=False)
    rows = [json.loads(l) for l in open(r.run_dir / "metrics.jsonl")]
    out["losses"] = [row["loss"] for row in rows if "loss" in row]
    out["recipe_eval"] = [row["eval"] for row in rows if "eval" in row]  # the recipe's [eval] tasks = ["knn"]
    m = zoo.load("local-dir:" + str(r.run_dir))
    out["embedding"] = list(m.encode("series", m.preprocess("series", [[0.0] * 40, [1.0] * 64])).shape)
    out["evaluate"] = zoo.evaluate(m, "example-sines", task="knn", k=1, dataset_options={"size": 40})
print("RESULT" + json.dumps(out))
"""


def _probe(tmp_path: Path, extra_path: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_PLUGINS", "ZOO_DISABLE_PLUGIN_AUTOLOAD")}
    if extra_path:
        env["PYTHONPATH"] = extra_path + os.pathsep + env.get("PYTHONPATH", "")
    code = PROBE % (str(EXAMPLE / "recipe.toml"), str(tmp_path / "run"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
           "--target", str(target), str(EXAMPLE)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert any(p.name.startswith("zoo_plugin_example") for p in target.iterdir())
    return target


def test_installed_plugin_is_discovered_and_trains(installed, tmp_path):
    out = _probe(tmp_path, str(installed))
    assert out["plugin"] and "zoo-plugin-example 0.1.0" in out["source"]
    assert "series" in out["modalities"] and "series/conv1d" in out["encoders"]
    assert "crop_pairs" in out["pairs"] and "example-sines" in out["datasets"]
    assert len(out["losses"]) == 6 and out["losses"][-1] < out["losses"][0]
    assert out["embedding"] == [2, 16]
    # its evaluation task, through a recipe's [eval] and through zoo.evaluate
    assert "knn" in out["tasks"] and "sines" in out["commands"]
    assert len(out["recipe_eval"]) == 1 and 0.0 <= out["recipe_eval"][0]["knn/accuracy"] <= 1.0
    assert set(out["evaluate"]) == {"accuracy"} and 0.0 <= out["evaluate"]["accuracy"] <= 1.0


def _zoo(args: list[str], extra_path: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_PLUGINS", "ZOO_DISABLE_PLUGIN_AUTOLOAD")}
    if extra_path:
        env["PYTHONPATH"] = extra_path + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_installed_plugin_adds_a_command(installed):
    helped = _zoo(["--help"], str(installed))
    assert helped.returncode == 0 and "sines" in helped.stdout and "example-sines series" in helped.stdout
    ran = _zoo(["sines", "--size", "3"], str(installed))
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert len([ln for ln in ran.stdout.splitlines() if ln.startswith("class ")]) == 3
    listed = _zoo(["list", "tasks"], str(installed))
    assert "knn" in listed.stdout and "[example]" in listed.stdout
    without = _zoo(["sines"], None)
    assert without.returncode == 2 and "invalid choice: 'sines'" in without.stderr


def test_without_the_plugin_it_is_gone(tmp_path):
    out = _probe(tmp_path, None)
    assert not out["plugin"] and "series" not in out["modalities"] and "crop_pairs" not in out["pairs"]
    assert "knn" not in out["tasks"] and "sines" not in out["commands"]


def test_example_plugin_is_small():
    lines = (EXAMPLE / "zoo_plugin_example" / "__init__.py").read_text().splitlines()
    assert len(lines) < 150
