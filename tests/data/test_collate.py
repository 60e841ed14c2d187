"""Vectorised collation keeps the per-sample augmentation streams and skips work it does not need."""
import torch

from zoo.data.collate import Collator, SampleGenerators, sample_seed
from zoo.data.datasets import create_dataset
from zoo.data.pairs import Paired, TwoViews
from zoo.model import ContrastiveModel, ModelConfig


def model(dim=8):
    tower = {"modality": "vector", "encoder": "mlp", "in_dim": dim, "hidden": 16, "out_dim": 16, "layers": 1}
    return ContrastiveModel(ModelConfig.from_dict({"embed_dim": 8, "towers": {"x": tower, "y": dict(tower)}}))


def items(ds, idx):
    return [(i, ds[i]) for i in idx]


def test_two_views_draw_from_one_seeded_stream_per_sample():
    """view 1 and view 2 of sample i continue one generator seeded by sample_seed(seed, epoch, i)."""
    ds = create_dataset("synthetic-pairs", size=32, dim=8)
    idx = [5, 0, 17, 3]
    c = Collator(model(), TwoViews(field="x", augment={"x": [{"name": "gaussian_noise", "std": 0.5}]}), ds, seed=7)
    c.epoch = 2
    batch = c(items(ds, idx))
    for row, i in enumerate(idx):
        g = torch.Generator().manual_seed(sample_seed(7, 2, i))
        first = ds[i]["x"] + 0.5 * torch.randn(8, generator=g)
        second = ds[i]["x"] + 0.5 * torch.randn(8, generator=g)
        assert torch.equal(batch.views["x.1"][1][row], first)
        assert torch.equal(batch.views["x.2"][1][row], second)


def test_generators_are_seeded_only_when_a_strategy_uses_them():
    ds = create_dataset("synthetic-pairs", size=32, dim=8)
    seen = []

    class Spy(Paired):
        def pair(self, samples, label_fields, gens):
            seen.append(gens)
            return super().pair(samples, label_fields, gens)

    c = Collator(model(), Spy(fields=["x", "y"]), ds, seed=0)
    batch = c(items(ds, range(6)))
    (gens,) = seen
    assert isinstance(gens, SampleGenerators) and not any(gens.ready)  # no augmentation: never seeded
    assert torch.equal(batch.views["x"][1], torch.stack([ds[i]["x"] for i in range(6)]))
    g = gens[3]  # asked for: seeded then, and the same object (same stream) when asked again
    assert gens.ready[3] and gens[3] is g and sum(gens.ready) == 1
    assert torch.equal(torch.randn(4, generator=torch.Generator().manual_seed(sample_seed(0, 0, 3))),
                       torch.randn(4, generator=g))
