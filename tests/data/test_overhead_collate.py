"""The collator loads each raw once: a view that is a field's loaded column is not loaded again, an
augmented or mixed view is; the result equals loading everything (``load`` is idempotent)."""
import pytest
import torch

from zoo.data.collate import Collator
from zoo.data.datasets import Indexed, create_dataset
from zoo.data.pairs import Paired, TwoViews
from zoo.data.vector import collate_vectors
from zoo.errors import ShapeError
from zoo.model import ContrastiveModel, ModelConfig


def model(dim=8):
    tower = {"modality": "vector", "encoder": "mlp", "in_dim": dim, "hidden": 16, "out_dim": 16, "layers": 1}
    return ContrastiveModel(ModelConfig.from_dict({"embed_dim": 8, "towers": {"x": tower, "y": dict(tower)}}))


def counting(c: Collator) -> list:
    """Count the vector modality's load calls made by the collator (its loaders and its towers' preps)."""
    calls = []
    for f, load in list(c.loaders.items()):
        if load is not None:  # None: a field in the dataset's loaded_fields, never loaded
            c.loaders[f] = lambda v, load=load, f=f: (calls.append(f), load(v))[1]
    return calls


def unclaimed(ds):
    """``ds`` without its ``loaded_fields`` claim: every raw goes through load, as for a dataset that says nothing."""
    ds.loaded_fields = frozenset()
    return ds


def test_unaugmented_views_are_not_loaded_again():
    ds = unclaimed(create_dataset("synthetic-pairs", size=16, dim=8))
    items = Indexed(ds).__getitems__([3, 1, 4])  # what the DataLoader's fetcher asks for
    assert [i for i, _ in items] == [3, 1, 4] and torch.equal(items[0][1]["x"], ds[3]["x"])
    c = Collator(model(), Paired(fields=["x", "y"]), ds, seed=0)
    calls = counting(c)
    batch = c(items)
    assert sorted(calls) == ["x"] * 3 + ["y"] * 3  # the towers' preprocessing loaded nothing again
    assert torch.equal(batch.views["y"][1], torch.stack([ds[i]["y"] for i in (3, 1, 4)]))


def test_fields_the_dataset_says_are_loaded_skip_load_and_give_the_same_batch():
    ds = create_dataset("synthetic-pairs", size=16, dim=8)
    assert ds.loaded_fields == {"x", "y"}
    claimed = Collator(model(), Paired(fields=["x", "y"]), ds, seed=0)
    calls = counting(claimed)
    batch = claimed([(i, ds[i]) for i in (3, 1, 4)])
    assert calls == [] and claimed.loaders == {"x": None, "y": None}
    plain = Collator(model(), Paired(fields=["x", "y"]), unclaimed(create_dataset("synthetic-pairs", size=16, dim=8)),
                     seed=0)
    other = plain([(i, ds[i]) for i in (3, 1, 4)])
    assert all(torch.equal(batch.views[v][1], other.views[v][1]) for v in ("x", "y"))


def test_an_augmented_view_is_not_loaded_again():
    """Augmentations take and return loaded raws (tests/contracts/test_contract_data.py checks each one)."""
    ds = unclaimed(create_dataset("synthetic-pairs", size=16, dim=8))
    c = Collator(model(), TwoViews(field="x", augment={"x": [{"name": "gaussian_noise", "std": 0.5}]}), ds, seed=0)
    calls = counting(c)
    out = c([(i, ds[i]) for i in range(5)])
    assert sorted(calls) == ["x"] * 5 + ["y"] * 5  # the columns once; neither augmented view again
    assert out.views["x.1"][1].shape == (5, 8) and not torch.equal(out.views["x.1"][1], out.views["x.2"][1])
    assert c.loaded_ids(c.load_all([(0, ds[0])]))["vector"]  # the ids of the loaded values, per modality


def test_vectors_of_different_lengths_are_a_shape_error():
    with pytest.raises(ShapeError, match=r"lengths \[3, 4\]"):
        collate_vectors([torch.zeros(3), torch.zeros(4)])
    with pytest.raises(ShapeError, match=r"lengths \[\]"):
        collate_vectors([])
    assert collate_vectors([torch.ones(2), torch.zeros(2)]).shape == (2, 2)


def test_a_false_loaded_fields_claim_is_a_data_error_naming_the_field():
    from zoo.data.datasets import ZooDataset
    from zoo.errors import DataError

    class Lists(ZooDataset):  # claims loaded, hands out Python lists (load would make tensors of them)
        fields, loaded_fields = {"x": "vector", "y": "vector"}, frozenset({"y"})

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {"x": torch.full((8,), float(i)), "y": [float(i)] * 8}

    ds = Lists()
    c = Collator(model(), Paired(fields=["x", "y"]), ds, seed=0)
    with pytest.raises(DataError, match=r"dataset Lists lists 'y' in loaded_fields.*\(list\); remove 'y'"):
        c([(i, ds[i]) for i in range(4)])


def test_an_augmentation_that_returns_unloaded_raws_is_a_data_error():
    from zoo.errors import DataError

    ds = create_dataset("synthetic-pairs", size=16, dim=8)
    c = Collator(model(), TwoViews(field="x", augment={"x": [{"name": "gaussian_noise", "std": 0.5}]}), ds, seed=0)
    c.strategy._augment["x"] = [lambda raw, g: raw.tolist()]  # a plugin augmentation breaking the contract
    with pytest.raises(DataError, match=r"got list; an augmentation must return what load_vector returns"):
        c([(i, ds[i]) for i in range(5)])


def test_a_chain_of_batch_augmentations_gives_the_per_sample_views():
    """Two views, each through two noise augmentations that have a batch form: the same tensors as the
    per-sample chain (each sample's generator serves its draws in the same order)."""
    ds = create_dataset("synthetic-pairs", size=16, dim=8)
    chain = {"x": [{"name": "gaussian_noise", "std": 0.5}, {"name": "gaussian_noise", "std": 0.1}]}
    fast = Collator(model(), TwoViews(field="x", augment=chain), ds, seed=3)
    slow = Collator(model(), TwoViews(field="x", augment=chain), ds, seed=3)
    for f, augs in slow.strategy._augment.items():  # the same functions without their batch form
        slow.strategy._augment[f] = [lambda raw, g, aug=aug: aug(raw, g) for aug in augs]
    items = [(i, ds[i]) for i in (5, 2, 9, 11)]
    a, b = fast(items), slow(items)
    for view in ("x.1", "x.2"):
        assert torch.equal(a.views[view][1], b.views[view][1])
    assert not torch.equal(a.views["x.1"][1], a.views["x.2"][1])
