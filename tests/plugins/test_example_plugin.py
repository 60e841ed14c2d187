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
       "pairs": zoo.list_pair_strategies(), "datasets": zoo.list_datasets()}
if out["plugin"]:
    r = zoo.train(%r, run_dir=%r, progress=False)
    out["losses"] = [json.loads(l)["loss"] for l in open(r.run_dir / "metrics.jsonl")]
    m = zoo.load("local-dir:" + str(r.run_dir))
    out["embedding"] = list(m.encode("series", m.preprocess("series", [[0.0] * 40, [1.0] * 64])).shape)
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


def test_without_the_plugin_it_is_gone(tmp_path):
    out = _probe(tmp_path, None)
    assert not out["plugin"] and "series" not in out["modalities"] and "crop_pairs" not in out["pairs"]


def test_example_plugin_is_small():
    lines = (EXAMPLE / "zoo_plugin_example" / "__init__.py").read_text().splitlines()
    assert len(lines) < 100
