"""Every built-in registered thing satisfies its protocol in zoo.protocols; objectives' optional attributes
are read through ObjectiveTraits. Cheap: encoders that would download or build large models are checked as
factories (callable, documented), the small ones are built."""
from __future__ import annotations

import inspect

import torch

import zoo
from zoo import protocols as P
from zoo.protocols import ObjectiveTraits
from zoo.registry import ModalitySpec

# encoders built here: small, offline; the keyword arguments make them so
CHEAP_ENCODERS = {"vector/mlp": {}, "image/mlp": {}, "text/bow": {}, "graph/gin": {"in_dim": 5},
                  "graph/gcn": {"in_dim": 5}, "graph/gat": {"in_dim": 5}, "graph/sage": {"in_dim": 5},
                  "molecule/gin": {}, "molecule/gine": {}, "molecule/fingerprint_mlp": {}, "audio/cnn": {},
                  "video/frames": {}}
OPTIONS = {"hierarchical": {"levels": [{"name": "pair", "views": ["a", "b"]}]}}


def test_every_registered_encoder_factory_is_callable_and_the_cheap_ones_are_encoders():
    reg = zoo.registry()
    names = {e.qualname for e in reg.entries("encoders")}
    assert set(CHEAP_ENCODERS) <= names
    for e in reg.entries("encoders"):
        assert callable(e.factory), e.qualname
        assert inspect.signature(e.factory) is not None
    for qualname, kw in CHEAP_ENCODERS.items():
        modality, name = qualname.split("/")
        enc = zoo.create_encoder(modality, name, **kw)
        assert isinstance(enc, P.Encoder) and isinstance(enc.output_dim, int), qualname
    levelled = zoo.create_encoder("vector", "mlp")
    assert isinstance(levelled, P.LevelledEncoder) and set(levelled.level_dims) <= set(
        levelled.forward_levels(torch.zeros(2, levelled.in_dim)))
    assert isinstance(zoo.create_encoder("text", "bow"), P.PreprocessingEncoder)
    assert isinstance(zoo.create_encoder("video", "frames"), P.EncoderWithAssets)


def test_every_registered_objective_is_an_objective_with_declared_traits():
    for e in zoo.registry().entries("objectives"):
        obj = e.factory(**OPTIONS.get(e.name, {}))
        assert isinstance(obj, P.Objective), e.name
        traits = ObjectiveTraits.of(obj)
        assert isinstance(traits.required_views, frozenset)
    traits = {name: ObjectiveTraits.of(zoo.create_objective(name, **OPTIONS.get(name, {})))
              for name in ("clip", "siglip", "supcon", "symile", "mochi", "hierarchical")}
    assert traits["siglip"].needs_logit_bias and not traits["clip"].needs_logit_bias
    assert traits["clip"].forward_local is not None and traits["siglip"].forward_local is not None
    assert traits["supcon"].supports_label_positives and not traits["clip"].supports_label_positives
    assert traits["symile"].similarity is not None and traits["clip"].similarity is None
    assert isinstance(traits["mochi"].generator, torch.Generator)
    levels = zoo.create_objective("hierarchical", levels=[{"name": "deep", "views": ["a/layer1", "b"]}])
    assert ObjectiveTraits.of(levels).required_views == {"a/layer1", "b"}


def test_traits_of_an_object_without_attributes_are_the_defaults():
    assert ObjectiveTraits.of(object()) == ObjectiveTraits()
    odd = type("Odd", (), {"needs_logit_bias": 1, "generator": "not a generator", "similarity": 3})()
    traits = ObjectiveTraits.of(odd)
    assert traits.needs_logit_bias is True and traits.generator is None and traits.similarity is None


def test_every_registered_modality_is_a_modality_spec_with_capabilities():
    reg = zoo.registry()
    for e in reg.entries("modalities"):
        spec = reg.modality(e.name)
        assert isinstance(spec, ModalitySpec) and isinstance(spec, P.Modality) and spec.name == e.name
        assert e.factory is spec and callable(spec.load) and callable(spec.collate)
        assert (spec.count is None) == (spec.slice is None), e.name  # both or neither
    assert reg.modality("text").prompts and not reg.modality("image").prompts
    assert reg.modality("image").thumbnail is not None and reg.modality("video").thumbnail is not None
    assert reg.modality("graph").slice is not None and reg.modality("molecule").count is not None
    assert reg.modality("text")("a cat") == reg.modality("text").load("a cat")  # callable = load (old Entry.factory)


def test_every_registered_pair_strategy_and_dataset_class_satisfies_its_protocol():
    for e in zoo.registry().entries("pair_strategies"):
        assert isinstance(e.factory, P.PairStrategy), e.name  # the class has setup and pair
    assert isinstance(zoo.registry().get("pair_strategies", "paired").factory(), P.PairStrategy)
    for e in zoo.registry().entries("datasets"):
        if inspect.isclass(e.factory):
            assert isinstance(e.factory, P.Dataset), e.name  # fields, label_fields, __len__, __getitem__
        else:
            assert callable(e.factory), e.name
    ds = zoo.create_dataset("synthetic-pairs")
    assert isinstance(ds, P.Dataset) and set(ds[0]) >= set(ds.fields)

