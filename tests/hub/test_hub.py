"""The Hub, offline: loading through a huggingface_hub cache (HF_HUB_OFFLINE=1, revision pinning),
and pushing (model.push_to_hub, `zoo push`) up to the huggingface_hub calls with the exact files.

The cache is built here in huggingface_hub's own layout (models--org--repo/{blobs, snapshots/<sha>,
refs/main}); a fresh interpreter started with HF_HUB_CACHE pointing at it and HF_HUB_OFFLINE=1
loads from it and must give the embeddings of the models the files were made from.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo.errors import CheckpointError
from zoo_pretrained import testing as T

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["a photo of a cat", "two dogs", "the number seven"]

LOADER = textwrap.dedent("""
    import json, sys, torch, zoo
    from safetensors.torch import save_file
    texts, out, errors = json.loads(sys.argv[1]), {}, {}
    for key, name in json.loads(sys.argv[2]).items():
        try:
            model = zoo.load(name)
        except Exception as exc:
            errors[key] = f"{type(exc).__name__}: {exc}"
            continue
        with torch.no_grad():
            out[key] = model.encode("text", model.preprocess("text", texts)).contiguous()
        errors[key + ".source"] = model.source
    save_file(out, sys.argv[3])
    print(json.dumps(errors))
""")


def load_in_cache(cache: Path, names: dict[str, str], out: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load ``names`` in a new interpreter with HF_HUB_CACHE=cache and HF_HUB_OFFLINE=1."""
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", LOADER, json.dumps(TEXTS), json.dumps(names), str(out)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load_file(str(out)), json.loads(proc.stdout.strip().splitlines()[-1])


def embed(model) -> torch.Tensor:
    with torch.no_grad():
        return model.encode("text", model.preprocess("text", TEXTS))


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    return {"clip_a": T.make_clip_dir(root / "clip_a", seed=0), "clip_b": T.make_clip_dir(root / "clip_b", seed=1),
            "st": T.make_st_dir(root / "st")}


def test_offline_cache_with_revision_pinning(native, tmp_path):
    cache = tmp_path / "cache"
    a, b = zoo.load(f"hf:{native['clip_a']}"), zoo.load(f"hf:{native['clip_b']}")
    a.save_pretrained(tmp_path / "zoo_a")
    b.save_pretrained(tmp_path / "zoo_b")
    sha_a = T.add_to_hub_cache(cache, "org/tiny-zoo", tmp_path / "zoo_a")
    sha_b = T.add_to_hub_cache(cache, "org/tiny-zoo", tmp_path / "zoo_b")  # refs/main now names sha_b
    sha_hf = T.add_to_hub_cache(cache, "org/tiny-clip", native["clip_a"])
    T.add_to_hub_cache(cache, "org/tiny-st", native["st"])
    assert (cache / "models--org--tiny-zoo" / "refs" / "main").read_text() == sha_b != sha_a
    names = {"main": "hf-hub:org/tiny-zoo", "pinned": f"hf-hub:org/tiny-zoo@{sha_a}", "hf": "hf:org/tiny-clip",
             "hf_pinned": f"hf:org/tiny-clip@{sha_hf}", "st": "st:org/tiny-st", "missing": "hf-hub:org/not-cached",
             "bad_rev": "hf-hub:org/tiny-zoo@" + "0" * 40}
    z, report = load_in_cache(cache, names, tmp_path / "z.safetensors")
    ea, eb = embed(a), embed(b)
    assert torch.allclose(z["main"], eb, atol=1e-6) and torch.allclose(z["pinned"], ea, atol=1e-6)
    assert not torch.allclose(ea, eb, atol=1e-3)  # the two revisions really differ
    assert torch.allclose(z["hf"], ea, atol=1e-6) and torch.allclose(z["hf_pinned"], ea, atol=1e-6)
    assert torch.allclose(z["st"], embed(zoo.load(f"st:{native['st']}")), atol=1e-6)
    assert f"@{sha_a}" in report["pinned.source"] and "@main" in report["main.source"]
    assert report["missing"].startswith("CheckpointError") and "HF_HUB_OFFLINE" in report["missing"]
    assert report["bad_rev"].startswith("CheckpointError")


class FakeApi:
    """Records the huggingface_hub calls of a push and keeps a copy of the uploaded folder."""

    def __init__(self, dest: Path):
        self.dest, self.calls = dest, []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, *, repo_id, folder_path, commit_message, **kw):
        self.calls.append(("upload_folder", repo_id, {"commit_message": commit_message, **kw}))
        shutil.copytree(folder_path, self.dest)  # the folder is temporary
        return f"https://huggingface.co/{repo_id}/commit/fake"


def test_push_to_hub_uploads_weights_config_assets_and_card(native, tmp_path):
    model = zoo.load(f"hf:{native['clip_a']}")
    api = FakeApi(tmp_path / "sent")
    recipe = '[data]\ndataset = "digits"\n[objective]\nname = "clip"\n'
    out = model.push_to_hub("me/tiny", private=True, commit_message="first", api=api, recipe_text=recipe,
                            metrics={"zero_shot/top1": 0.5})
    assert out.endswith("commit/fake")
    assert api.calls[0] == ("create_repo", "me/tiny", {"private": True, "exist_ok": True})
    assert api.calls[1][:2] == ("upload_folder", "me/tiny") and api.calls[1][2]["commit_message"] == "first"
    sent = {p.relative_to(tmp_path / "sent").as_posix() for p in (tmp_path / "sent").rglob("*") if p.is_file()}
    assert {"config.json", "model.safetensors", "recipe.toml", "README.md", "assets/text/tokenizer.json",
            "assets/text/config.json", "assets/image/config.json"} <= sent
    card = (tmp_path / "sent" / "README.md").read_text()
    assert "image, text" in card and "Radford" in card and "`digits`" in card and "zero_shot/top1" in card
    back = zoo.load(f"local-dir:{tmp_path / 'sent'}")
    assert torch.allclose(embed(back), embed(model), atol=1e-6)


def test_zoo_push_cli_sends_the_run_as_trained(tmp_path, monkeypatch, capsys):
    from zoo.cli import main
    over = {"run.steps": 3, "optim.warmup_steps": 3, "run.log_every": 1, "run.progress": False, "data.options.size": 64,
            "data.batch_size": 16}
    run = zoo.train(ROOT / "recipes" / "quickstart.toml", overrides=over, run_dir=tmp_path / "run").run_dir
    apis = []
    import huggingface_hub

    def fake(token=None):
        apis.append(FakeApi(tmp_path / "sent"))
        apis[-1].token = token
        return apis[-1]
    monkeypatch.setattr(huggingface_hub, "HfApi", fake)
    assert main(["push", str(run), "me/quick", "--private", "--message", "v1", "--token", "hf_x"]) == 0
    assert "hf-hub:me/quick" in capsys.readouterr().out
    api = apis[0]
    assert api.token == "hf_x" and api.calls[0] == ("create_repo", "me/quick", {"private": True, "exist_ok": True})
    sent = tmp_path / "sent"
    for name in ("config.json", "model.safetensors", "recipe.toml"):
        assert (sent / name).read_bytes() == (run / name).read_bytes()  # the run's own files, not a re-save
    card = (sent / "README.md").read_text()
    results = json.loads((run / "results.json").read_text())
    assert 'zoo.load("hf-hub:me/quick")' in card and f'"steps": {results["steps"]}' in card
    assert "Objective: `clip`" in card and "Training data: `synthetic-pairs`" in card


def test_push_refuses_a_run_that_does_not_load(tmp_path):
    from zoo.hub.cli import push_run
    api = FakeApi(tmp_path / "sent")
    with pytest.raises(CheckpointError, match="config.json"):
        push_run(tmp_path, "me/empty", api=api)
    assert api.calls == []  # nothing reached the Hub
