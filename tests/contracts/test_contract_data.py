"""Every registered augmentation and pair strategy, parametrised over the registry.

- An augmentation is deterministic for a fixed ``torch.Generator``, leaves its input untouched, changes
  something for some seed, and returns loaded raws (its modality's ``load`` leaves them as they are, so the
  collator does not load them again) that its modality collates.
- A pair strategy turns a dataset's samples into views of registered modalities (one raw per sample, which
  the modality loads and collates) and passes the labels through.

Every registered dataset is checked in ``tests/data/test_datasets.py`` (contract attributes, both splits,
raw forms), also parametrised over the registry.
"""
from __future__ import annotations

import copy

import pytest
import torch
from helpers import collate, load_raws
from tiny_specs import AUGMENTATIONS, PAIR_STRATEGIES, raws

import zoo
from zoo.data.pairs import RawViews, make_augmentation

AUGS = zoo.list_augmentations()
PAIRS = zoo.list_pair_strategies()


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if hasattr(a, "x") and hasattr(a, "edge_index"):  # a graph (PyG Data)
        return same(a.x, b.x) and same(a.edge_index, b.edge_index)
    return a == b


def test_every_registered_augmentation_and_pair_strategy_has_a_tiny_spec():
    assert sorted(AUGS) == sorted(AUGMENTATIONS), "tests/tiny_specs.py AUGMENTATIONS must list every augmentation"
    missing = sorted(set(PAIRS) - set(PAIR_STRATEGIES))
    assert not missing, f"add a dataset and options for {missing} to tests/tiny_specs.py PAIR_STRATEGIES"


@pytest.mark.parametrize("qualname", AUGS)
def test_augmentation_is_deterministic_and_collates(qualname):
    modality, name = qualname.split("/", 1)
    loaded = load_raws(modality, raws(modality, 4))
    before = copy.deepcopy(loaded)
    aug = make_augmentation(modality, {"name": name, **AUGMENTATIONS[qualname]})
    runs = [[aug(r, torch.Generator().manual_seed(i)) for i, r in enumerate(loaded)] for _ in range(2)]
    assert all(same(a, b) for a, b in zip(*runs)), "not deterministic for a fixed generator"
    assert all(same(a, b) for a, b in zip(loaded, before)), "changed its input in place"
    assert any(not same(a, r) for a, r in zip(runs[0], loaded)), "changed nothing for seeds 0–3"
    again = load_raws(modality, runs[0])
    assert all(same(a, b) for a, b in zip(again, runs[0])), "returns raws its modality's load would change"
    collate(modality, runs[0])


BATCHED = [q for q in AUGS if hasattr(make_augmentation(q.split("/", 1)[0], {"name": q.split("/", 1)[1],
                                                                          **AUGMENTATIONS[q]}), "batch")]


def test_some_augmentation_has_a_batch_form():
    assert "vector/gaussian_noise" in BATCHED  # so the test below checks something


@pytest.mark.parametrize("qualname", BATCHED)
def test_a_batch_form_gives_the_per_sample_views_bit_for_bit(qualname):
    """``fn.batch(raws, generators)`` must equal ``[fn(raw, g) …]``: the pair strategies use it in its place."""
    modality, name = qualname.split("/", 1)
    loaded = load_raws(modality, raws(modality, 6))
    aug = make_augmentation(modality, {"name": name, **AUGMENTATIONS[qualname]})
    per_sample = [aug(r, torch.Generator().manual_seed(i)) for i, r in enumerate(loaded)]
    batched = aug.batch(loaded, [torch.Generator().manual_seed(i) for i in range(len(loaded))])
    assert len(batched) == len(per_sample) and all(same(a, b) for a, b in zip(per_sample, batched))
    assert all(same(a, b) for a, b in zip(loaded, load_raws(modality, raws(modality, 6)))), "changed its input"


@pytest.mark.parametrize("name", PAIRS)
def test_pair_strategy_turns_samples_into_views(name):
    dataset, ds_options, options = PAIR_STRATEGIES[name]
    ds = zoo.create_dataset(dataset, split="train", **ds_options)
    strategy = zoo.registry().get("pair_strategies", name).factory(**options)
    strategy.setup(ds.fields)
    samples = [ds[i] for i in range(4)]
    out = strategy.pair(samples, list(ds.label_fields), [torch.Generator().manual_seed(i) for i in range(4)])
    assert isinstance(out, RawViews) and len(out.views) >= 2, out.views.keys()
    for view, (modality, items) in out.views.items():
        assert len(items) == 4, view
        collate(modality, load_raws(modality, items))
    assert set(ds.label_fields) <= set(out.labels)
    assert all(t.shape == (4,) for t in out.labels.values())
    for view, m in (out.mask or {}).items():
        assert view in out.views and m.dtype == torch.bool and m.shape == (4,)
