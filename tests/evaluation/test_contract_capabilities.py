"""The core asks a modality's capabilities instead of naming it: a modality the zoo has never heard of
("blob", batches that are no tensor, list or dict; "words", which encodes prompts) gets thumbnails in the
pictures, class prompts in zero-shot, and GradCache chunks through its count/slice."""
from __future__ import annotations

import types
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import zoo
from zoo import hookimpl
from zoo.data.batches import batch_size, slice_batch
from zoo.data.datasets import ListDataset
from zoo.errors import DataError, ShapeError
from zoo.training.gradcache import grad_cache_backward

F = 6  # features of a blob


@dataclass
class Blob:
    values: torch.Tensor  # (F,)


@dataclass
class BlobBatch:  # deliberately not a tensor, list or dict: only the modality knows its rows
    data: torch.Tensor    # (B, F)


THUMBNAILS: list[int] = []


def thumbnail(raw: Blob) -> np.ndarray:
    THUMBNAILS.append(1)
    return np.tile(raw.values.abs().clamp(max=1).numpy(), (F, 1))  # (F, F) in [0, 1]


def load_blob(x):
    return x if isinstance(x, Blob) else Blob(torch.as_tensor(x, dtype=torch.float32))


def chars(texts: list[str]) -> torch.Tensor:  # (B, 26) letter counts
    out = torch.zeros(len(texts), 26)
    for i, t in enumerate(texts):
        for c in t.lower():
            if "a" <= c <= "z":
                out[i, ord(c) - 97] += 1
    return out


class Linear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int = 8):
        super().__init__()
        self.net, self.output_dim = nn.Linear(in_dim, out_dim), out_dim

    def forward(self, batch):  # BlobBatch or (B, in_dim) -> (B, out_dim)
        return self.net(batch.data if isinstance(batch, BlobBatch) else batch)


@hookimpl
def zoo_register_modalities(register):
    register("blob", load=load_blob, collate=lambda raws: BlobBatch(torch.stack([r.values for r in raws])),
             is_single=lambda x: isinstance(x, Blob), thumbnail=thumbnail,
             count=lambda b: b.data.shape[0], slice=lambda b, lo, hi: BlobBatch(b.data[lo:hi]))
    register("words", load=str, collate=chars, is_single=lambda x: isinstance(x, str), prompts=True)
    register("mute_words", load=str, collate=chars, is_single=lambda x: isinstance(x, str))  # no prompts


@hookimpl
def zoo_register_encoders(register):
    register("blob", "lin", lambda **kw: Linear(F, **kw))
    register("words", "chars", lambda **kw: Linear(26, **kw))
    register("mute_words", "chars", lambda **kw: Linear(26, **kw))


@pytest.fixture
def blobs(fresh_plugins):
    zoo.register_plugin(types.SimpleNamespace(zoo_register_modalities=zoo_register_modalities,
                                              zoo_register_encoders=zoo_register_encoders), name="blobs")
    torch.manual_seed(0)
    model = zoo.create_model(towers={"blob": {"encoder": "lin"}, "caption": {"modality": "words", "encoder": "chars"}},
                             embed_dim=8)
    names = ["ab", "cd", "ef"]
    rows = [{"blob": Blob(torch.randn(F)), "caption": f"a {names[i % 3]}", "class": i % 3} for i in range(12)]
    ds = ListDataset(rows, fields={"blob": "blob", "caption": "words"}, label_fields=["class"], class_names=names,
                     prompts=["a {}", "the {}"])
    return model, ds


def test_batches_are_counted_and_sliced_by_their_modality(blobs):
    spec = zoo.registry().modality("blob")
    batch = spec.collate([Blob(torch.full((F,), float(i))) for i in range(5)])
    assert batch_size(batch, spec) == 5 and batch_size(batch, "blob") == 5 and batch_size(batch) is None
    part = slice_batch(batch, 1, 3, spec)
    assert isinstance(part, BlobBatch) and part.data[:, 0].tolist() == [1.0, 2.0]
    assert batch_size({"x": batch, "n": 3}, spec) == 5
    with pytest.raises(ShapeError, match="slice= capability"):
        slice_batch(batch, 0, 2)                       # no modality given: the core cannot guess
    with pytest.raises(ShapeError, match="modality 'words'"):
        slice_batch(batch, 0, 2, "words")              # a modality without slice=


def test_gradcache_chunks_a_batch_only_its_modality_can_slice(blobs):
    model, ds = blobs
    objective = zoo.create_objective("clip")
    samples = [ds[i] for i in range(12)]
    views = {"blob": ("blob", model.preprocess("blob", [s["blob"] for s in samples])),
             "caption": ("caption", model.preprocess("caption", [s["caption"] for s in samples]))}

    from zoo.training.step import Encoded

    def encode(v):
        return Encoded(model(v), torch.tensor(10.0), None)

    def loss_fn(enc):
        return objective(enc.embeddings, logit_scale=enc.logit_scale)

    loss_fn(encode(views)).backward()
    full = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    modalities = {k: zoo.registry().modality(t.config.modality) for k, t in model.towers.items()}
    grad_cache_backward(encode, views, loss_fn, chunk=5, device=torch.device("cpu"), modalities=modalities)
    for n, g in full.items():
        torch.testing.assert_close(dict(model.named_parameters())[n].grad, g, atol=1e-6, rtol=1e-5)
    with pytest.raises(ShapeError, match="cannot split a batch of type BlobBatch|cannot count the rows"):
        grad_cache_backward(encode, views, loss_fn, chunk=5, device=torch.device("cpu"))


def test_zero_shot_uses_the_modality_that_encodes_prompts(blobs):
    model, ds = blobs
    out = zoo.evaluate(model, ds, task="zero_shot")
    assert set(out) == {"top1", "top5"} and 0.0 <= out["top1"] <= 1.0
    mute = zoo.create_model(towers={"blob": {"encoder": "lin"},
                                    "caption": {"modality": "mute_words", "encoder": "chars"}}, embed_dim=8)
    rows = [{"blob": ds[i]["blob"], "caption": ds[i]["caption"], "class": ds[i]["class"]} for i in range(len(ds))]
    plain = ListDataset(rows, fields={"blob": "blob", "caption": "mute_words"}, label_fields=["class"],
                        class_names=ds.class_names, prompts=ds.prompts)
    with pytest.raises(DataError, match="modality that encodes prompts"):
        zoo.evaluate(mute, plain, task="zero_shot")


def test_pictures_draw_raws_only_through_the_thumbnail_capability(blobs, tmp_path):
    from zoo.evaluation.plots import report_pictures
    model, ds = blobs
    THUMBNAILS.clear()
    paths = report_pictures(model, ds, tmp_path, objective=zoo.create_objective("clip"))
    assert {p.name for p in paths} == {"similarity.png", "embeddings.png", "retrieval.png"}
    assert all(p.stat().st_size > 0 for p in paths)
    assert len(THUMBNAILS) >= 5  # every retrieved blob drawn by the modality's thumbnail
