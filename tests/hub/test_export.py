"""model.export: sentence-transformers and open_clip folders that those libraries open, with equal embeddings."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.cli import main
from zoo.errors import UnknownNameError
from zoo.hub.export import ExportError

TEXTS = ["a dog", "A much longer sentence about cats and the weather in Paris, with a comma.", "x"]
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def _st_encode(folder, texts):
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_tensor=True)


def _zoo_encode(model, modality, raws):
    with torch.no_grad():
        return model.encode(modality, model.preprocess(modality, raws))


@pytest.mark.slow
def test_minilm_opens_in_sentence_transformers(tmp_path):
    model = zoo.load("st:all-MiniLM-L6-v2")
    model.export("sentence-transformers", tmp_path / "st")
    assert torch.allclose(_st_encode(tmp_path / "st", TEXTS), _zoo_encode(model, "text", TEXTS), atol=1e-5)


@pytest.mark.parametrize("projection, pooling", [("linear", "mean"), ("mlp", "cls"), ("none", "last")])
def test_tiny_hf_text_tower_with_projection(tmp_path, projection, pooling):
    torch.manual_seed(0)
    dim = 32 if projection == "none" else 16
    tower = {"encoder": "hf:bert", "config": TINY_BERT, "pooling": pooling, "projection": projection,
             "tokenizer": "sentence-transformers/all-MiniLM-L6-v2"}
    model = zoo.create_model({"text": tower}, embed_dim=dim).eval()
    out = model.export("sentence-transformers", tmp_path / "st")
    st = _st_encode(out, TEXTS)
    assert st.shape == (3, dim)
    assert torch.allclose(st, _zoo_encode(model, "text", TEXTS), atol=1e-5)


def _tiny_open_clip(projection="linear"):
    torch.manual_seed(0)
    return zoo.create_model({
        "image": {"encoder": "open_clip:custom", "embed_dim": 24, "projection": projection,
                  "vision_cfg": {"width": 32, "layers": 1, "head_width": 16, "patch_size": 8, "image_size": 32}},
        "text": {"encoder": "open_clip:ViT-B-32", "embed_dim": 20 if projection == "linear" else 16,
                 "projection": projection if projection != "mlp" else "linear",
                 "text_cfg": {"width": 32, "heads": 2, "layers": 1, "context_length": 16}}}, embed_dim=16).eval()


def test_tiny_open_clip_opens_in_open_clip(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    model = _tiny_open_clip()
    with torch.no_grad():
        model.logit_scale.fill_(3.0)
    model.export("open_clip", tmp_path / "oc")
    native, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'oc'}")
    native.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{tmp_path / 'oc'}")
    images = [torch.rand(3, 40, 48) for _ in range(3)]
    x = model.preprocess("image", images)  # (3, 3, 32, 32)
    tokens = model.preprocess("text", TEXTS)
    assert torch.equal(tokens, tokenizer(TEXTS))
    with torch.no_grad():
        assert torch.allclose(native.encode_image(x, normalize=True), _zoo_encode(model, "image", images), atol=1e-5)
        assert torch.allclose(native.encode_text(tokens, normalize=True), _zoo_encode(model, "text", TEXTS), atol=1e-5)
    assert native.logit_scale.item() == pytest.approx(3.0)
    assert "32" in str(preprocess) and "0.4814" in str(preprocess)  # the tower's size and mean


def test_what_a_format_cannot_hold_is_an_error(tmp_path):
    with pytest.raises(ExportError, match="MLP projection"):
        _tiny_open_clip("mlp").export("open_clip", tmp_path / "a")
    bow = zoo.create_model({"text": {"encoder": "bow"}}, embed_dim=8)
    with pytest.raises(ExportError, match="cannot be expressed in the sentence-transformers format"):
        bow.export("sentence-transformers", tmp_path / "b")
    with pytest.raises(ExportError, match="image tower"):
        bow.export("open_clip", tmp_path / "c")
    with pytest.raises(UnknownNameError, match="export format"):
        bow.export("onnx-ish", tmp_path / "d")
    assert not any((tmp_path / d).exists() for d in "abcd")  # refused before anything is written


def test_cli_export_of_a_saved_run(tmp_path, capsys):
    model = zoo.create_model({"text": {"encoder": "hf:bert", "config": TINY_BERT,
                                       "tokenizer": "sentence-transformers/all-MiniLM-L6-v2"}}, embed_dim=8).eval()
    model.save_pretrained(tmp_path / "run")
    assert main(["export", str(tmp_path / "run"), "sentence-transformers", str(tmp_path / "st")]) == 0
    assert "wrote sentence-transformers" in capsys.readouterr().out
    assert torch.allclose(_st_encode(tmp_path / "st", TEXTS), _zoo_encode(model, "text", TEXTS), atol=1e-5)
    assert main(["export", str(tmp_path / "run"), "open_clip", str(tmp_path / "oc")]) == 2
    assert "image tower" in capsys.readouterr().err
