"""The `zoo` command line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zoo.cli import main

from conftest import QUICK

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.toml"


def test_plugins_lists_core_modules(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "zoo.testing" in out and "encoders: vector/mlp" in out and "zoo core" in out


@pytest.mark.parametrize("kind, expect", [("encoders", "vector/mlp"), ("objectives", "clip"),
                                          ("pairs", "dropout_twins"), ("datasets", "synthetic-pairs"),
                                          ("sources", "local-dir")])
def test_list(capsys, kind, expect):
    assert main(["list", kind]) == 0
    assert expect in capsys.readouterr().out


def test_list_filters_by_modality(capsys):
    assert main(["list", "encoders", "--modality", "vector"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  ")]
    assert lines and all(ln.strip().startswith("vector/") for ln in lines)


def test_info_shows_citation_and_doc(capsys):
    assert main(["info", "clip"]) == 0
    out = capsys.readouterr().out
    assert "Radford" in out and "objective: clip" in out


def test_unknown_name_is_a_clean_error(capsys):
    assert main(["info", "clipp"]) == 2
    assert "Did you mean" in capsys.readouterr().err


def test_train_then_resume(capsys, tmp_path):
    sets = [f"--set={k}={v if not isinstance(v, bool) else str(v).lower()}" for k, v in QUICK.items()]
    assert main(["train", str(QUICKSTART), "--run-dir", str(tmp_path / "r"), *sets]) == 0
    out = capsys.readouterr().out
    assert '"steps": 8' in out and f'zoo.load("local-dir:{tmp_path / "r"}")' in out
    assert main(["train", str(QUICKSTART), "--resume", str(tmp_path / "r"), *sets]) == 0
    assert main(["train", str(QUICKSTART), "--set", "optim.lr=fast"]) == 2
    assert "must be a number" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--resume" in out.stdout and "--set" in out.stdout
