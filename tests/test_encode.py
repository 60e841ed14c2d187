"""The inference API: ``model.encode(modality, inputs)`` on raw inputs of every modality, ``similarity``,
``zoo.load(dtype=…)`` and bf16 for every built-in tower (parametrised over the registry)."""
from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from tiny_specs import ENCODERS

import zoo
from zoo.errors import RecipeError, UnknownNameError

TEXTS = ["a photo of the number seven", "7", "The quick brown fox jumps over the lazy dog.", "two dogs", "x y z"]


def ring(n: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    src = torch.arange(n)
    edges = torch.stack([torch.cat([src, (src + 1) % n]), torch.cat([(src + 1) % n, src])])
    return {"x": torch.randn(n, 5, generator=g), "edge_index": edges}


def _raws(modality: str) -> list:
    g = torch.Generator().manual_seed(0)
    return {
        "vector": [torch.randn(4, generator=g) for _ in range(5)],
        "text": TEXTS,
        "image": [torch.rand(3, 20, 24, generator=g), torch.rand(1, 8, 8, generator=g), torch.rand(3, 8, 8, generator=g)],
        "audio": [torch.randn(n, generator=g) * 0.3 for n in (4000, 2500, 3200)],
        "video": [torch.rand(6, 1, 8, 8, generator=g) for _ in range(3)],
        "graph": [ring(n, i) for i, n in enumerate((4, 6, 5))],
        "molecule": ["CCO", "c1ccccc1O", "CC(=O)N"],
    }[modality]


CASES = ENCODERS  # one tiny tower per built-in encoder (tests/tiny_specs.py; the guard: tests/contracts/)
IDS = [f"{m}-{e}-{i}" for i, (m, e, _) in enumerate(CASES)]
PADDING_CHANGES_OUTPUT = {"hf:wav2vec2"}  # wav2vec2-base style: group norm over the padded waveform, no mask


def build(modality: str, encoder: str, kw: dict, embed_dim: int = 8) -> zoo.ContrastiveModel:
    torch.manual_seed(0)
    return zoo.create_model({modality: {"encoder": encoder, **kw}}, embed_dim=embed_dim).eval()


# -- one input, a list, a preprocessed batch -----------------------------------------------------------------
@pytest.mark.parametrize("modality,encoder,kw", CASES, ids=IDS)
def test_single_list_and_batch_agree_without_autograd(modality, encoder, kw):
    model = build(modality, encoder, kw).train()
    raws = _raws(modality)
    z = model.encode(modality, raws, batch_size=2)                      # (N, D), in chunks of 2
    one = model.encode(modality, raws[1])                               # (D,)
    batch = model.encode(modality, model.preprocess(modality, raws))    # (N, D), one preprocessed batch
    assert z.shape == (len(raws), 8) and one.shape == (8,) and not z.requires_grad
    assert model.training  # encode switched to eval and back
    atol = 0.05 if encoder in PADDING_CHANGES_OUTPUT else 1e-5
    torch.testing.assert_close(one, z[1], atol=atol, rtol=0)
    torch.testing.assert_close(batch, z, atol=atol, rtol=0)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(len(raws)))
    assert model.preprocess(modality, raws[0]) is not None  # one raw input preprocesses as a batch of one
    assert model.encode(modality, model.preprocess(modality, raws[0])).shape == (1, 8)


def test_a_string_and_an_rgb_tensor_are_one_input_each():
    text = build("text", "bow", CASES[1][2])
    assert text.preprocess("text", "hello")["ids"].shape[0] == 1  # not 5 characters
    assert text.encode("text", "hello").shape == (8,)
    image = build("image", "open_clip:ViT-B-32", CASES[6][2])
    rgb = torch.rand(3, 32, 32)
    assert image.preprocess("image", rgb).shape == (1, 3, 32, 32)  # not 3 grey images
    torch.testing.assert_close(image.encode("image", rgb), image.encode("image", [rgb])[0])
    hwc = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    assert image.encode("image", hwc).shape == (8,)
    stack = np.stack([hwc, hwc])  # (N, H, W, C): a numpy array with a batch axis is a list of raws
    assert image.encode("image", stack).shape == (2, 8)


def test_encode_keeps_no_graph_and_forward_still_trains():
    model = build("text", "bow", CASES[1][2]).train()
    z = model.encode("text", TEXTS)
    assert z.grad_fn is None and not z.requires_grad
    out = model({"text": ("text", model.preprocess("text", TEXTS))})["text"]  # the training path
    out.sum().backward()
    assert out.requires_grad and model.towers["text"].encoder.bag.weight.grad is not None


def test_text_is_sorted_by_length_within_the_call_and_the_order_restored():
    model = build("text", "hf:bert", CASES[2][2])
    seen = []
    tower = model.tower("text")
    original = tower.preprocess

    def spy(raws, prompt_name=None):
        seen.append(list(raws))
        return original(raws, prompt_name=prompt_name)
    tower.preprocess = spy
    texts = ["mid length text", "a", "the longest text of all of these", "xx", "medium"]
    z = model.encode("text", texts, batch_size=2)
    flat = [t for b in seen for t in b]
    assert flat == sorted(texts, key=len, reverse=True) and [len(b) for b in seen] == [2, 2, 1]
    tower.preprocess = original
    each = torch.stack([model.encode("text", t) for t in texts])
    torch.testing.assert_close(z, each, atol=1e-5, rtol=0)  # padding within a batch changes nothing


def test_progress_bar_device_and_empty_input(capsys):
    model = build("vector", "mlp", CASES[0][2])
    z = model.encode("vector", _raws("vector"), batch_size=2, progress=True, device="cpu")
    assert "encode vector" in capsys.readouterr().err and z.shape == (5, 8)
    assert model.encode("vector", []).shape == (0, 8)
    assert model.encode("vector", [1.0, 2.0, 3.0, 4.0]).shape == (8,)  # a flat list of numbers is one vector
    with pytest.raises(RecipeError, match="batch_size"):
        model.encode("vector", _raws("vector"), batch_size=0)
    with pytest.raises(RecipeError, match="has no prompts"):
        model.encode("vector", _raws("vector"), prompt_name="query")
    with pytest.raises(UnknownNameError, match="tower"):
        model.encode("nope", _raws("vector"))


def test_a_third_party_modality_gets_the_same_api(fresh_plugins):
    """A runtime plugin: ``is_single`` and ``length`` hooks, no modality name in the core."""
    calls = []

    def load(value):
        return [float(c) for c in value] if isinstance(value, str) else value

    def collate(raws):
        calls.append([len(r) for r in raws])
        width = max(3, *(len(r) for r in raws))
        return torch.tensor([r + [0.0] * (width - len(r)) for r in raws])[:, :3]  # (B, 3)

    plugin = types.SimpleNamespace(
        zoo_register_modalities=zoo.hookimpl(lambda register: register(
            "digits", load=load, collate=collate, is_single=lambda x: isinstance(x, str), length=len)),
        zoo_register_encoders=zoo.hookimpl(lambda register: register(
            "digits", "linear", _Linear)))
    zoo.register_plugin(plugin, name="digits-plugin")
    model = zoo.create_model({"digits": {"encoder": "linear"}}, embed_dim=4)
    z = model.encode("digits", ["12", "34567", "890"], batch_size=2)
    assert z.shape == (3, 4) and model.encode("digits", "34567").shape == (4,)
    assert calls[0] == [5, 3]  # longest first
    torch.testing.assert_close(z[1], model.encode("digits", "34567"))


class _Linear(torch.nn.Module):
    output_dim = 4

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 4)

    def forward(self, x):
        return self.lin(x)


# -- similarity ----------------------------------------------------------------------------------------------
def test_similarity_is_cosine_or_the_models_logits():
    model = zoo.create_model({"x": {"modality": "vector", "encoder": "mlp", "in_dim": 4},
                              "y": {"modality": "vector", "encoder": "mlp", "in_dim": 4}}, embed_dim=8,
                             logit_bias=-2.0)
    a, b = model.encode("x", _raws("vector")[:3]), model.encode("y", _raws("vector"))
    cos = model.similarity(a * 3, b)  # scale-free
    torch.testing.assert_close(cos, a @ b.T)
    assert cos.shape == (3, 5) and model.similarity(a[0], b).shape == (5,) and model.similarity(a[0], b[0]).dim() == 0
    torch.testing.assert_close(model.similarity(a, b, scaled=True), math.exp(math.log(1 / 0.07)) * (a @ b.T) - 2.0)


# -- dtype -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("modality,encoder,kw", CASES, ids=IDS)
def test_every_tower_encodes_in_bf16(modality, encoder, kw):
    model = build(modality, encoder, kw)
    want = model.encode(modality, _raws(modality))
    model.to(torch.bfloat16)
    got = model.encode(modality, _raws(modality))
    assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    assert torch.nn.functional.cosine_similarity(got.float(), want, dim=-1).min() > 0.95


def test_load_with_dtype_and_device(tmp_path):
    model = build("image", "open_clip:ViT-B-32", CASES[6][2])
    model.save_pretrained(tmp_path / "m")
    for dtype in (torch.bfloat16, "fp16"):
        loaded = zoo.load(f"local-dir:{tmp_path / 'm'}", dtype=dtype, device="cpu")
        assert {p.dtype for p in loaded.parameters()} == {zoo.inference.as_dtype(dtype)}
        assert loaded.encode("image", torch.rand(3, 40, 32)).dtype == zoo.inference.as_dtype(dtype)
    with pytest.raises(RecipeError, match="not a floating-point dtype"):
        zoo.load(f"local-dir:{tmp_path / 'nowhere'}", dtype="int8")  # refused before anything is read
