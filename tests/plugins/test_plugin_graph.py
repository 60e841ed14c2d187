"""The graph plugin: modality load/collate, every encoder, GraphCL augmentations, the graphcl
pair strategy, checkpoint round trip and the GraphCL recipe."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers import logged_losses

import zoo
from zoo.data.collate import Collator
from zoo.data.datasets import ZooDataset
from zoo.data.pairs import TwoViews, make_augmentation
from zoo.errors import DataError, ShapeError, UnknownNameError

pyg_data = pytest.importorskip("torch_geometric.data")
Data, Batch = pyg_data.Data, pyg_data.Batch
ROOT = Path(__file__).resolve().parents[2]
F = 5  # node feature size of the test graphs


def ring_with_chords(n: int, seed: int = 0, f: int = F) -> Data:
    """A connected undirected graph: a ring of n nodes plus a few seeded chords; both directions stored."""
    g = torch.Generator().manual_seed(seed)
    pairs = {(k, (k + 1) % n) for k in range(n)} | {tuple(sorted(torch.randperm(n, generator=g)[:2].tolist()))
                                                       for _ in range(n // 3)}
    e = torch.tensor(sorted(pairs), dtype=torch.long).t()
    return Data(x=torch.randn(n, f, generator=g), edge_index=torch.cat([e, e.flip(0)], dim=1))


def modality():
    return zoo.registry().get("modalities", "graph")


def load(value):
    return modality().factory(value)


def collate(raws):
    return modality().meta["collate"](raws)


def batch_of(*sizes: int) -> Batch:
    return collate([load(ring_with_chords(n, seed=n)) for n in sizes])


def undirected_pairs(data: Data) -> set[tuple[int, int]]:
    return {tuple(sorted(p)) for p in data.edge_index.t().tolist()}


def test_registered():
    assert "graph" in zoo.list_modalities()
    assert {"graph/gin", "graph/gcn", "graph/gat", "graph/sage"} <= set(zoo.list_encoders("graph"))
    assert {"graph/node_drop", "graph/edge_perturb", "graph/attr_mask", "graph/subgraph"} <= set(
        zoo.list_augmentations("graph"))
    assert "graphcl" in zoo.list_pair_strategies()
    assert modality().meta["extra"] == "graph"


# -- modality ------------------------------------------------------------------------------------
def test_load_data_is_validated_and_idempotent():
    d = ring_with_chords(6)
    assert load(d) is d and load(load(d)) is d


def test_load_dict_forms():
    d = ring_with_chords(5)
    for value in ({"x": d.x.tolist(), "edge_index": d.edge_index.tolist()},
                  {"x": d.x.numpy(), "edge_index": d.edge_index.numpy(), "edge_attr": torch.ones(d.num_edges, 2)}):
        out = load(value)
        assert isinstance(out, Data) and out.x.dtype == torch.float32 and out.edge_index.dtype == torch.long
        assert torch.allclose(out.x, d.x) and torch.equal(out.edge_index, d.edge_index)
        assert load(out) is out  # idempotent
    assert load({"x": d.x, "edge_index": d.edge_index, "edge_attr": torch.ones(d.num_edges, 2)}).edge_attr.shape == (
        d.num_edges, 2)


NO_EDGES = torch.zeros(2, 0, dtype=torch.long)


@pytest.mark.parametrize("bad, match", [
    (Data(x=torch.ones(3), edge_index=NO_EDGES), r"expected node features x of shape \(N, F\).*got \(3,\)"),
    (Data(x=torch.ones(3, 2, dtype=torch.long), edge_index=NO_EDGES), "float dtype, got .*int64"),
    (Data(x=torch.ones(3, 2), edge_index=torch.tensor([[0, 1], [1, 3]])), r"node ids in \[0, 3\).*from 0 to 3"),
    (Data(x=torch.ones(3, 2), edge_index=torch.tensor([[0, -1], [1, 0]])), r"in \[0, 3\).*from -1"),
    (Data(x=torch.ones(3, 2), edge_index=torch.tensor([0, 1, 2])), r"edge_index of shape \(2, E\).*got \(3,\)"),
    (Data(x=torch.ones(3, 2), edge_index=torch.tensor([[0.0], [1.0]])), r"torch.long, got \(2, 1\) torch.float32"),
    (Data(x=torch.ones(3, 2), edge_index=torch.tensor([[0], [1]]), edge_attr=torch.ones(2, 1)),
     r"edge_attr with one row per edge \(1, …\), got \(2, 1\)"),
])
def test_load_rejects_bad_shapes(bad, match):
    with pytest.raises(ShapeError, match=match):
        load(bad)


def test_load_unreadable_is_data_error():
    with pytest.raises(DataError, match="cannot read the string 'graphs/g1.json'"):
        load("graphs/g1.json")
    with pytest.raises(DataError, match=r"lacks \['edge_index'\]"):
        load({"x": [[1.0]]})
    with pytest.raises(DataError, match="cannot turn"):
        load({"x": "abc", "edge_index": [[0], [0]]})
    with pytest.raises(DataError, match="cannot read a int"):
        load(3)


def test_collate_batches_graphs():
    b = batch_of(3, 5, 4)
    assert isinstance(b, Batch) and b.num_graphs == 3 and b.x.shape == (12, F)
    assert b.batch.tolist() == [0] * 3 + [1] * 5 + [2] * 4
    with pytest.raises(DataError, match="same attributes"):
        collate([ring_with_chords(3), Data(x=torch.ones(2, F), edge_index=NO_EDGES, edge_attr=torch.ones(0, 1))])
    with pytest.raises(DataError, match="same feature sizes"):
        collate([ring_with_chords(3), ring_with_chords(3, f=F + 1)])


# -- encoders --------------------------------------------------------------------------------
def encoder_names() -> list[str]:
    return [e.split("/", 1)[1] for e in zoo.list_encoders("graph")]


@pytest.mark.parametrize("readout", ["sum", "mean", "max", "attention"])
@pytest.mark.parametrize("name", encoder_names())
def test_encoder_forward_backward(name, readout):
    torch.manual_seed(0)
    enc = zoo.create_encoder("graph", name, in_dim=F, hidden=8, layers=2, out_dim=6, readout=readout, dropout=0.1)
    b = batch_of(3, 6, 4)
    out = enc(b)
    assert out.shape == (3, enc.output_dim) == (3, 6) and torch.isfinite(out).all()
    out.square().sum().backward()
    grads = [p.grad for p in enc.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", encoder_names())
def test_encoder_levels_and_nodes(name):
    torch.manual_seed(0)
    enc = zoo.create_encoder("graph", name, in_dim=F, hidden=8, layers=3, out_dim=6).eval()
    b = batch_of(3, 6)
    levels = enc.forward_levels(b)
    assert enc.level_dims == {"layer1": 8, "layer2": 8, "layer3": 8}
    assert {k: tuple(v.shape) for k, v in levels.items()} == {"layer1": (2, 8), "layer2": (2, 8), "layer3": (2, 8),
                                                               "final": (2, 6)}
    assert torch.allclose(levels["final"], enc(b), atol=1e-6)
    assert enc.forward_nodes(b).shape == (9, 6)
    node_enc = zoo.create_encoder("graph", name, in_dim=F, hidden=8, layers=3, out_dim=6, node_level=True)
    node_enc.load_state_dict(enc.state_dict())
    assert torch.allclose(node_enc.eval()(b), enc.forward_nodes(b), atol=1e-6)


def test_encoder_on_a_single_data_and_isolated_nodes():
    torch.manual_seed(0)
    enc = zoo.create_encoder("graph", "gin", in_dim=F, hidden=8, layers=2, out_dim=4).eval()
    lone = Data(x=torch.randn(3, F), edge_index=NO_EDGES)
    assert enc(lone).shape == (1, 4)
    assert torch.allclose(enc(lone), enc(collate([lone])), atol=1e-6)


def test_sum_readout_is_permutation_invariant():
    torch.manual_seed(0)
    enc = zoo.create_encoder("graph", "gin", in_dim=F, hidden=8, layers=2, out_dim=4).eval()
    d = ring_with_chords(7, seed=3)
    perm = torch.randperm(7)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(7)
    shuffled = Data(x=d.x[perm], edge_index=inv[d.edge_index])
    assert torch.allclose(enc(collate([d])), enc(collate([shuffled])), atol=1e-5)


def test_encoder_errors():
    with pytest.raises(ValueError, match="needs in_dim"):
        zoo.create_encoder("graph", "gcn")
    with pytest.raises(UnknownNameError, match="readout 'avg'"):
        zoo.create_encoder("graph", "gin", in_dim=F, readout="avg")
    with pytest.raises(ValueError, match="multiple of heads"):
        zoo.create_encoder("graph", "gat", in_dim=F, hidden=10, heads=4)
    enc = zoo.create_encoder("graph", "sage", in_dim=F + 1, hidden=8)
    with pytest.raises(ShapeError, match=r"expected float node features x of shape \(N, 6\), got \(8, 5\)"):
        enc(batch_of(3, 5))


# -- augmentations -------------------------------------------------------------------------------
def aug(name: str, **kw):
    return make_augmentation("graph", {"name": name, **kw})


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def same_graph(a: Data, b: Data) -> bool:
    return a.num_nodes == b.num_nodes and torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)


@pytest.mark.parametrize("name", [a.split("/", 1)[1] for a in zoo.list_augmentations("graph")])
def test_augmentation_deterministic_changes_and_keeps_input(name):
    d = ring_with_chords(20, seed=1)
    before = d.clone()
    f = aug(name)
    a, b = f(d, gen(7)), f(d, gen(7))
    assert same_graph(a, b)                                       # same seed → same view
    assert not same_graph(a, d)                                   # the view differs from the input
    assert not all(same_graph(a, f(d, gen(s))) for s in range(8, 12))  # other seeds → other views
    assert same_graph(d, before)                                  # input untouched
    assert load(a) is a and a.x.dtype == torch.float32            # still a valid graph raw


def test_node_drop_ratio():
    d = ring_with_chords(20, seed=2)
    out = aug("node_drop")(d, gen(0))
    assert out.num_nodes == 16                                    # ⌊0.2·20⌋ = 4 dropped
    kept = [i for i in range(20) if any(torch.equal(d.x[i], r) for r in out.x)]
    assert len(kept) == 16                                        # surviving rows are original rows
    assert aug("node_drop", ratio=0.5)(d, gen(0)).num_nodes == 10
    lone = Data(x=torch.ones(1, 2), edge_index=NO_EDGES)
    assert aug("node_drop", ratio=0.9)(lone, gen(0)).num_nodes == 1  # never empty


def test_edge_perturb_ratio_and_symmetry():
    d = ring_with_chords(20, seed=3)
    pairs = undirected_pairs(d)
    out = aug("edge_perturb")(d, gen(0))
    new = undirected_pairs(out)
    k = int(0.2 * len(pairs))
    assert len(pairs - new) == k and len(new - pairs) == k        # k removed, k added
    assert out.is_undirected() and out.num_nodes == 20
    withattr = Data(x=d.x, edge_index=d.edge_index, edge_attr=torch.ones(d.num_edges, 3))
    o = aug("edge_perturb")(withattr, gen(0))
    assert o.edge_attr.shape == (o.num_edges, 3) and int((o.edge_attr.sum(1) == 0).sum()) == 2 * k


def test_attr_mask_ratio():
    d = ring_with_chords(20, seed=4)
    out = aug("attr_mask")(d, gen(0))
    changed = (out.x != d.x).any(dim=1)
    assert int(changed.sum()) == 4 and torch.allclose(out.x[changed], d.x.mean(0).expand(4, F))
    zero = aug("attr_mask", fill="zero", ratio=0.5)(d, gen(0))
    assert int((zero.x.abs().sum(1) == 0).sum()) == 10
    with pytest.raises(ValueError, match="fill"):
        aug("attr_mask", fill="noise")


def test_subgraph_is_connected_and_sized():
    d = ring_with_chords(20, seed=5)
    out = aug("subgraph")(d, gen(0))
    assert out.num_nodes == 16
    reach, todo = {0}, [0]                                        # BFS over the view's edges
    adj = {}
    for u, v in out.edge_index.t().tolist():
        adj.setdefault(u, []).append(v)
    while todo:
        for v in adj.get(todo.pop(), []):
            if v not in reach:
                reach.add(v)
                todo.append(v)
    assert len(reach) == 16


@pytest.mark.parametrize("name", ["node_drop", "edge_perturb", "attr_mask", "subgraph"])
def test_augmentation_ratio_checked(name):
    with pytest.raises(ValueError, match="ratio must be in"):
        aug(name, ratio=1.5)


# -- pair strategies ------------------------------------------------------------------------------
class TinyGraphs(ZooDataset):
    fields = {"graph": "graph"}
    label_fields = ["class"]

    def __init__(self, split: str = "train", size: int = 16):
        self.items = [{"graph": ring_with_chords(6 + i % 5, seed=i), "class": i % 2} for i in range(size)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def tiny_model():
    torch.manual_seed(0)
    return zoo.create_model(towers={"graph": {"encoder": "gin", "in_dim": F, "hidden": 8, "out_dim": 8}}, embed_dim=4)


def test_two_views_makes_independent_graph_views():
    ds = TinyGraphs()
    strategy = TwoViews(field="graph", augment={"graph": [{"name": "node_drop"}]})
    collator = Collator(tiny_model(), strategy, ds, seed=0)
    items = [(i, ds[i]) for i in range(6)]
    batch = collator(items)
    (t1, b1), (t2, b2) = batch.views["graph.1"], batch.views["graph.2"]
    assert t1 == t2 == "graph" and b1.num_graphs == b2.num_graphs == 6 and batch.labels["class"].shape == (6,)
    assert b1.num_nodes < sum(ds[i]["graph"].num_nodes for i in range(6))
    assert not torch.equal(b1.x, b2.x) or not torch.equal(b1.edge_index, b2.edge_index)
    again = collator(items)
    assert torch.equal(again.views["graph.1"][1].x, b1.x)        # seeded per sample
    emb = tiny_model()(batch.views)
    assert emb["graph.1"].shape == emb["graph.2"].shape == (6, 4)


def test_graphcl_draws_one_pool_augmentation_per_view():
    ds = TinyGraphs(size=24)
    strategy = zoo.registry().get("pair_strategies", "graphcl").factory(
        field="graph", pool=[{"name": "node_drop", "ratio": 0.5}, {"name": "attr_mask", "ratio": 0.5}])
    strategy.setup(ds.fields)
    samples = [ds[i] for i in range(24)]
    views = strategy.pair(samples, ["class"], [gen(i) for i in range(24)]).views
    kinds = {(a.num_nodes < s["graph"].num_nodes, b.num_nodes < s["graph"].num_nodes)
             for s, a, b in zip(samples, views["graph.1"][1], views["graph.2"][1])}
    assert (True, False) in kinds and (False, True) in kinds      # views drawn independently from the pool
    again = strategy.pair(samples, ["class"], [gen(i) for i in range(24)]).views
    assert all(same_graph(a, b) for a, b in zip(views["graph.1"][1], again["graph.1"][1]))
    with pytest.raises(zoo.RecipeError, match="pool"):
        zoo.registry().get("pair_strategies", "graphcl").factory(field="graph")


# -- checkpoint ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", encoder_names())
def test_save_load_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model(towers={"graph": {"encoder": name, "in_dim": F, "hidden": 8, "out_dim": 8,
                                               "readout": "attention"}}, embed_dim=4).eval()
    b = model.preprocess("graph", [ring_with_chords(n, seed=n) for n in (4, 7, 5)])
    model.save_pretrained(tmp_path / "m")
    loaded = zoo.load(f"local-dir:{tmp_path / 'm'}").eval()
    assert torch.allclose(model.encode("graph", b), loaded.encode("graph", b), atol=1e-6)


# -- recipe ------------------------------------------------------------------------------------------


def test_graphcl_recipe_trains(tmp_path):
    overrides = {"run.steps": 10, "run.log_every": 1, "run.progress": False, "data.options.size": 240,
                 "data.batch_size": 32, "model.towers.graph.hidden": 16, "model.towers.graph.layers": 2}
    result = zoo.train(ROOT / "recipes" / "graphcl.toml", overrides=overrides, run_dir=tmp_path / "run", progress=False)
    losses = logged_losses(result.run_dir)
    assert len(losses) == 10 and all(map(torch.isfinite, torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    assert (result.run_dir / "model.safetensors").is_file()


def test_docs_samples_run():
    text = (ROOT / "docs" / "modalities" / "graph.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks
    for i, code in enumerate(blocks):
        exec(compile(code, f"graph.md block {i}", "exec"), {})


def test_missing_extra_names_the_pip_extra(monkeypatch):
    import sys

    from zoo_graph._pyg import require
    monkeypatch.setitem(sys.modules, "torch_geometric.fake_part", None)  # importing it raises ImportError
    with pytest.raises(zoo.PluginError, match=r"pip install 'zoo\[graph\]'"):
        require("torch_geometric.fake_part")
