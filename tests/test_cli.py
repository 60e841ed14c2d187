"""The `zoo` command line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import QUICK

from zoo.cli import main

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.toml"


def test_plugins_lists_core_modules(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "zoo.data.vector" in out and "encoders: vector/mlp" in out and "zoo core" in out


@pytest.mark.parametrize("kind, expect", [("encoders", "vector    mlp"), ("objectives", "clip"),
                                          ("pairs", "dropout_twins"), ("datasets", "synthetic-pairs"),
                                          ("sources", "local-dir")])
def test_list(capsys, kind, expect):
    assert main(["list", kind]) == 0
    assert expect in capsys.readouterr().out


def test_list_filters_by_modality(capsys):
    assert main(["list", "encoders", "--modality", "vector"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  ")]
    assert lines and all(ln.split()[0] == "vector" for ln in lines)


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


# -- reading the command line as a person would ------------------------------------------------------------
def test_version(capsys):
    import zoo
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"zoo {zoo.__version__}"


def test_info_prints_the_description_once(capsys):
    assert main(["info", "clip"]) == 0
    out = capsys.readouterr().out
    assert out.count("Symmetric InfoNCE (CLIP) between exactly two aligned views.") == 1


def test_encoders_are_listed_as_recipes_write_them(capsys):
    pytest.importorskip("zoo_image")
    assert main(["list", "encoders", "--modality", "image"]) == 0
    out = capsys.readouterr().out
    assert "timm:<timm model>" in out and "image/timm" not in out
    assert main(["info", "timm:resnet18"]) == 0
    assert 'encoder = "timm:<timm model>"' in capsys.readouterr().out


def test_one_spelling_open_clip_and_the_old_one_still_works(capsys):
    pytest.importorskip("zoo_pretrained")
    import zoo
    names = zoo.list_models("open_clip:ViT-B-32/*")
    assert names and all(n.startswith("open_clip:") for n in names)
    assert zoo.list_models("openclip:ViT-B-32/*") == names  # the alias still resolves
    assert not any(n.startswith("openclip:") for n in zoo.list_models())
    assert main(["list", "sources"]) == 0
    out = capsys.readouterr().out
    assert "open_clip " in out and "openclip " not in out
    from zoo.plugins import registry
    assert registry().get("pretrained", "openclip").name == "open_clip"
    assert registry().get("encoders", "openclip_visual", "image").name == "open_clip_visual"  # old checkpoints


def test_list_models_counts_and_marks_offline(capsys):
    pytest.importorskip("zoo_pretrained")
    assert main(["list", "models", "--pattern", "st:*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    import re
    total, offline = map(int, re.match(r"models \((\d+); (\d+) load offline", lines[0]).groups())
    assert total == len(lines) - 1 and offline >= 1
    assert "  * st:all-MiniLM-L6-v2" in lines  # the bundled copy


def test_sentence_transformers_names_suggest_st():
    pytest.importorskip("zoo_pretrained")
    import zoo
    for name in ("hf:sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        with pytest.raises(zoo.UnknownNameError, match="st:sentence-transformers/all-MiniLM-L6-v2"):
            zoo.load(name)


def test_offline_hub_names_fail_at_once_with_the_way_out(monkeypatch):
    pytest.importorskip("zoo_pretrained")
    import huggingface_hub

    import zoo
    from zoo.hub import offline
    monkeypatch.setattr(offline, "_probe", {})
    monkeypatch.setattr(offline, "_reachable", lambda *a: False)  # no network
    seen = []
    real = huggingface_hub.snapshot_download

    def spy(*a, **kw):
        seen.append(huggingface_hub.constants.HF_HUB_OFFLINE)
        return real(*a, **kw)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    before = huggingface_hub.constants.HF_HUB_OFFLINE
    with pytest.raises(zoo.CheckpointError, match="--local-dir DIR.*'st:DIR'"):
        zoo.load("st:zoo-tests/not-a-cached-model")
    assert seen == [True]  # huggingface_hub ran in offline mode: no retries against a dead network
    assert huggingface_hub.constants.HF_HUB_OFFLINE == before


def test_a_record_is_printed_once_and_above_the_progress_bar(capsys, monkeypatch):
    import logging

    from zoo.logs import progress_logging, setup_logging
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))
    setup_logging()
    lib = logging.getLogger("zoo_tests_lib")  # a library with its own handler that still propagates
    lib.addHandler(logging.StreamHandler())
    lib.propagate = True
    try:
        lib.warning("retrying")
        with progress_logging():
            kinds = {type(h).__name__ for h in logging.getLogger().handlers}
            logging.getLogger("zoo.train").info("step 10")
    finally:
        lib.handlers.clear()
    err = capsys.readouterr().err
    assert err.count("retrying") == 1 and err.count("step 10") == 1
    assert "_TqdmLoggingHandler" in kinds


def test_under_torchrun_only_rank_0_prints(monkeypatch, capsys):
    import logging

    from zoo.logs import setup_logging
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setenv("RANK", "1")
    setup_logging()
    logging.getLogger("zoo.train").info("hidden")
    logging.getLogger("zoo.train").warning("shown")
    print("table")
    captured = capsys.readouterr()
    assert "hidden" not in captured.err and "[rank 1] WARNING zoo.train: shown" in captured.err
    assert "table" not in captured.out
    logging.getLogger().setLevel(logging.WARNING)


def test_a_closed_pipe_is_not_reported_as_a_bug():
    """`zoo list encoders | head -1`: the reader leaves early; the CLI says nothing and prints no traceback."""
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli", "list", "encoders"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "internal error" not in err
