"""The molecule plugin: OGB-style featurisation checked by hand, every accepted input form,
SMILES errors (with a hypothesis fuzz: only DataError), every encoder, MolCLR augmentations,
checkpoint round trip and the molecule recipes."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import zoo
from zoo.data.collate import Collator
from zoo.data.datasets import ZooDataset
from zoo.data.pairs import TwoViews, make_augmentation
from zoo.errors import DataError, ShapeError

Chem = pytest.importorskip("rdkit.Chem")
Data = pytest.importorskip("torch_geometric.data").Data
hypothesis = pytest.importorskip("hypothesis")
from helpers import logged_losses
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from zoo_molecule.featurize import ATOM_DIMS, ATOM_MASK_IDS, BOND_DIMS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
SMILES = ["CCO", "c1ccccc1", "CC(=O)O", "C#N", ASPIRIN, "C[C@H](N)O", "O=C1CCCN1", "Clc1ccccc1Br"]


def modality():
    return zoo.registry().get("modalities", "molecule")


def load(value):
    return modality().factory(value)


def collate(raws):
    return modality().meta["collate"](raws)


def test_registered():
    assert "molecule" in zoo.list_modalities() and modality().meta["extra"] == "molecule"
    assert {"molecule/gin", "molecule/gine", "molecule/fingerprint_mlp"} <= set(zoo.list_encoders("molecule"))
    assert {"molecule/atom_mask", "molecule/bond_delete", "molecule/subgraph_remove",
            "molecule/smiles_enumeration"} <= set(zoo.list_augmentations("molecule"))


# -- featurisation, by hand ---------------------------------------------------------------------------
def test_feature_sizes_are_ogbs():
    assert ATOM_DIMS == [119, 5, 12, 12, 10, 6, 6, 2, 2] and BOND_DIMS == [5, 6, 2]  # ogb get_*_feature_dims()


def test_ethanol_by_hand():
    d = load("CCO")
    # atomic number − 1, chirality, degree incl. Hs, charge + 5, Hs, radicals, SP3 = 2, aromatic, ring
    assert d.x.tolist() == [[5, 0, 4, 5, 3, 0, 2, 0, 0],   # CH3
                            [5, 0, 4, 5, 2, 0, 2, 0, 0],   # CH2
                            [7, 0, 2, 5, 1, 0, 2, 0, 0]]   # OH
    assert d.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]  # 2 bonds → 4 directed edges
    assert d.edge_attr.tolist() == [[0, 0, 0]] * 4                # single, no stereo, not conjugated
    assert d.x.dtype == d.edge_attr.dtype == d.edge_index.dtype == torch.long
    assert d.smiles == "CCO" and d.num_nodes == 3


def test_feature_values_by_hand():
    benzene = load("c1ccccc1")
    assert benzene.x.tolist() == [[5, 0, 3, 5, 1, 0, 1, 1, 1]] * 6  # SP2, aromatic, in ring
    assert benzene.edge_attr.tolist() == [[3, 0, 1]] * 12           # aromatic, conjugated
    assert load("C#N").x[:, 6].tolist() == [0, 0] and load("C#N").edge_attr[0].tolist() == [2, 0, 0]  # SP, triple
    assert load("[NH4+]").x.tolist() == [[6, 0, 4, 6, 4, 0, 2, 0, 0]]  # charge +1 → 6, four Hs
    assert load("[CH3]").x[0, 5] == 1                                 # one radical electron
    assert load("F/C=C/F").edge_attr[2].tolist() == [1, 2, 0]          # double, STEREOE
    assert load("*C").x[0, 0] == 118 and load("*C").x[0, 6] == 5       # dummy atom → misc entries
    chiral = load("C[C@H](N)O")
    tag = str(Chem.MolFromSmiles("C[C@H](N)O").GetAtomWithIdx(1).GetChiralTag())
    assert chiral.x[1, 1] == ["CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW"].index(tag) > 0


def test_explicit_hydrogens_are_removed_like_rdkit():
    assert torch.equal(load("[H]OC([H])([H])[H]").x, load("OC").x)


# -- load forms --------------------------------------------------------------------------------
def test_load_forms_agree(tmp_path):
    ref = load(ASPIRIN)
    mol = Chem.MolFromSmiles(ASPIRIN)
    sdf = tmp_path / "two.sdf"
    with Chem.SDWriter(str(sdf)) as w:
        w.write(mol)
        w.write(Chem.MolFromSmiles("CCO"))
    molfile = tmp_path / "one.mol"
    Chem.MolToMolFile(mol, str(molfile))
    for value in (mol, Chem.MolToMolBlock(mol), sdf.read_text(), str(sdf), sdf, str(molfile), f"  {ASPIRIN}\n"):
        d = load(value)
        assert torch.equal(d.x, ref.x) and torch.equal(d.edge_index, ref.edge_index), type(value)
        assert torch.equal(d.edge_attr, ref.edge_attr)
        assert Chem.CanonSmiles(d.smiles) == Chem.CanonSmiles(ASPIRIN)
    assert load(mol).smiles == Chem.MolToSmiles(mol)


def test_load_is_idempotent_on_data():
    d = load("CCO")
    assert load(d) is d and load(load(d)) is d
    masked = make_augmentation("molecule", {"name": "atom_mask"})(d, torch.Generator().manual_seed(0))
    assert load(masked) is masked  # augmented views (mask ids) load again


@pytest.mark.parametrize("smiles, position", [("CC(C", 3), ("CX", 2), ("C==C", 3),
                                              ("C[N+](C)(C)(C)C", 2),   # valence error: atom #1 is at position 2
                                              ("c1cccc1", 1)])          # kekulisation error: atom #0
def test_invalid_smiles_names_string_and_position(smiles, position):
    with pytest.raises(DataError) as err:
        load(smiles)
    msg = str(err.value)
    assert f"invalid SMILES {smiles!r} at position {position}" in msg and "rdkit:" in msg
    assert f"\n    {smiles}\n    {' ' * (position - 1)}^\n" in msg  # a caret under the position


def test_invalid_smiles_position_on_rdkit_without_capture_error_log(monkeypatch):
    from rdkit import rdBase
    monkeypatch.delattr(rdBase, "CaptureErrorLog")  # older rdkit: the log is read from sys.stderr
    with pytest.raises(DataError, match=r"invalid SMILES 'CC\(C' at position 3 \(rdkit: extra open parentheses"):
        load("CC(C")


def test_invalid_smiles_without_position_names_string_and_reason():
    with pytest.raises(DataError, match=r"invalid SMILES 'C1CC' \(rdkit: unclosed ring"):
        load("C1CC")
    with pytest.raises(DataError, match="empty"):
        load("   ")


def test_unreadable_inputs(tmp_path):
    with pytest.raises(DataError, match="'nowhere/mol.sdf' does not exist"):
        load("nowhere/mol.sdf")
    bad = tmp_path / "bad.sdf"
    bad.write_text("not a molecule\n\n\nM  END\n$$$$\n")
    with pytest.raises(DataError, match=f"molecule file '{bad}'"):
        load(bad)
    with pytest.raises(DataError, match="cannot read the MOL block"):
        load("garbage\nM  END")
    with pytest.raises(DataError, match="cannot read a int"):
        load(42)
    unsanitisable = Chem.MolFromSmiles("C[N+](C)(C)(C)C", sanitize=False)
    with pytest.raises(DataError, match="cannot sanitise"):
        load(unsanitisable)


def featurised(x, edge_index=None, edge_attr=None, smiles="CC"):
    d = Data(x=x, edge_index=torch.zeros(2, 0, dtype=torch.long) if edge_index is None else edge_index)
    d.edge_attr = torch.zeros(d.edge_index.shape[1], 3, dtype=torch.long) if edge_attr is None else edge_attr
    if smiles is not None:
        d.smiles = smiles
    return d


LONG_X = torch.zeros(2, 9, dtype=torch.long)


@pytest.mark.parametrize("bad, error, match", [
    (featurised(torch.zeros(2, 9)), ShapeError, r"expected x of shape \(N, 9\) with integer"),
    (featurised(torch.zeros(2, 8, dtype=torch.long)), ShapeError, r"got \(2, 8\)"),
    (featurised(torch.full((2, 9), 200)), ShapeError, r"column 0 in \[0, 119\], got values from 200"),
    (featurised(LONG_X, torch.tensor([[0], [2]])), ShapeError, r"node ids in \[0, 2\)"),
    (featurised(LONG_X, edge_attr=torch.zeros(0, 2, dtype=torch.long)), ShapeError, r"edge_attr of shape \(E, 3\)"),
    (featurised(LONG_X, smiles=None), DataError, "'smiles'"),
])
def test_bad_featurised_data(bad, error, match):
    with pytest.raises(error, match=match):
        load(bad)


SMILES_ALPHABET = "CNOSPFIBrcnosp()[]=#$:/\\.@+-%0123456789*H \n"


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(max_size=60), st.text(alphabet=SMILES_ALPHABET, max_size=40)))
def test_fuzz_smiles_loader_raises_only_data_error(text):
    try:
        d = load(text)
    except DataError:
        return
    assert d.x.shape[1] == 9 and d.x.shape[0] >= 1 and d.edge_attr.shape == (d.edge_index.shape[1], 3)
    assert load(d) is d


def test_collate():
    b = collate([load(s) for s in SMILES[:3]])
    assert b.num_graphs == 3 and b.x.shape == (3 + 6 + 4, 9) and b.smiles == SMILES[:3]


# -- encoders ---------------------------------------------------------------------------------
TINY = {"gin": {"hidden": 16, "layers": 2, "out_dim": 12}, "gine": {"hidden": 16, "layers": 2, "out_dim": 12},
        "fingerprint_mlp": {"n_bits": 128, "hidden": 16, "layers": 2, "out_dim": 12}}


def encoder_names() -> list[str]:
    return [e.split("/", 1)[1] for e in zoo.list_encoders("molecule")]


def build(name: str, **kw):
    torch.manual_seed(0)
    return zoo.create_encoder("molecule", name, **{**TINY[name], **kw})


@pytest.mark.parametrize("name", encoder_names())
def test_encoder_forward_backward(name):
    enc = build(name, dropout=0.1)
    b = collate([load(s) for s in SMILES])
    out = enc(b)
    assert out.shape == (len(SMILES), enc.output_dim) == (len(SMILES), 12) and torch.isfinite(out).all()
    out.square().sum().backward()
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    levels = enc.eval().forward_levels(b)
    assert levels["final"].shape == (len(SMILES), 12) and torch.allclose(levels["final"], enc(b), atol=1e-6)
    assert {k: v.shape[1] for k, v in levels.items() if k != "final"} == enc.level_dims


@pytest.mark.parametrize("name", ["gin", "gine"])
def test_gnn_nodes_readouts_and_masked_atoms(name):
    enc = build(name, readout="attention").eval()
    b = collate([load(s) for s in SMILES[:3]])
    assert enc.forward_nodes(b).shape == (13, 12) and set(enc.level_dims) == {"layer1", "layer2"}
    mask_all = make_augmentation("molecule", {"name": "atom_mask", "ratio": 1.0})
    masked = collate([mask_all(load(s), torch.Generator()) for s in SMILES[:3]])
    assert (masked.x == torch.tensor(ATOM_MASK_IDS)).all() and torch.isfinite(enc(masked)).all()


def test_gine_reads_bonds_and_gin_does_not():
    b = collate([load(s) for s in SMILES[:4]])
    other = b.clone()
    other.edge_attr = torch.zeros_like(b.edge_attr)
    gine, gin = build("gine").eval(), build("gin").eval()
    assert not torch.allclose(gine(b), gine(other))
    assert torch.allclose(gin(b), gin(other))


def test_fingerprint_mlp_uses_rdkit_morgan_bits_and_caches():
    from rdkit.Chem import rdFingerprintGenerator
    enc = build("fingerprint_mlp")
    fp = enc.features([ASPIRIN, "CCO"])
    ref = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=128).GetFingerprintAsNumPy(
        Chem.MolFromSmiles(ASPIRIN))
    assert fp.shape == (2, 128) and fp[0].tolist() == ref.astype(float).tolist()
    assert len(enc._cache) == 2 and enc.fingerprint(ASPIRIN) is enc._cache[ASPIRIN]
    assert torch.equal(enc(collate([load(ASPIRIN)])), enc([ASPIRIN]))
    with pytest.raises(ShapeError, match="smiles"):
        enc(torch.zeros(2, 3))


def test_encoder_shape_errors():
    with pytest.raises(ShapeError, match=r"integer atom features x of shape \(N, 9\)"):
        build("gin")(collate([Data(x=torch.ones(2, 9), edge_index=torch.tensor([[0], [1]]))]))  # float x
    with pytest.raises(ValueError, match="dropout"):
        build("gine", dropout=1.5)


# -- augmentations ------------------------------------------------------------------------------
def aug(name: str, **kw):
    return make_augmentation("molecule", {"name": name, **kw})


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def same(a: Data, b: Data) -> bool:
    return (a.num_nodes == b.num_nodes and torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
            and torch.equal(a.edge_attr, b.edge_attr))


@pytest.mark.parametrize("name", [a.split("/", 1)[1] for a in zoo.list_augmentations("molecule")])
def test_augmentation_deterministic_changes_and_keeps_input(name):
    d = load(ASPIRIN)
    before = d.clone()
    f = aug(name)
    a, b = f(d, gen(3)), f(d, gen(3))
    assert same(a, b)
    assert not same(a, d)
    assert not all(same(a, f(d, gen(s))) for s in range(4, 8))
    assert same(d, before)
    assert load(a) is a


def test_atom_mask_ratio():
    d = load(ASPIRIN)  # 13 atoms
    out = aug("atom_mask")(d, gen(0))
    masked = (out.x == torch.tensor(ATOM_MASK_IDS)).all(dim=1)
    assert int(masked.sum()) == 3 and torch.equal(out.x[~masked], d.x[~masked])  # ⌊0.25·13⌋
    assert int((aug("atom_mask")(load("CO"), gen(0)).x == torch.tensor(ATOM_MASK_IDS)).all(1).sum()) == 1  # ≥ 1


def test_bond_delete_ratio():
    d = load(ASPIRIN)  # 13 bonds
    out = aug("bond_delete")(d, gen(0))
    assert out.num_nodes == 13 and out.edge_index.shape[1] == 2 * (13 - 3) and out.is_undirected()
    pairs = {tuple(p) for p in d.edge_index.t().tolist()}
    assert {tuple(p) for p in out.edge_index.t().tolist()} <= pairs


def test_subgraph_remove_takes_a_connected_region():
    d = load(ASPIRIN)
    d.orig = torch.arange(13)  # a node attribute that follows the atoms
    out = aug("subgraph_remove")(d, gen(1))
    gone = sorted(set(range(13)) - set(out.orig.tolist()))
    assert out.num_nodes == 10 and len(gone) == 3                                 # ⌊0.25·13⌋ removed
    bonds = {tuple(p) for p in d.edge_index.t().tolist()}
    reach, todo = {gone[0]}, [gone[0]]
    while todo:
        u = todo.pop()
        for v in gone:
            if (u, v) in bonds and v not in reach:
                reach.add(v)
                todo.append(v)
    assert reach == set(gone)                                                      # the removed atoms are connected
    kept = set(out.orig.tolist())
    assert {(int(out.orig[u]), int(out.orig[v])) for u, v in out.edge_index.t().tolist()} == {
        (u, v) for u, v in bonds if u in kept and v in kept}


def test_smiles_enumeration_is_the_same_molecule():
    d = load(ASPIRIN)
    out = aug("smiles_enumeration")(d, gen(0))
    assert out.smiles != d.smiles and Chem.CanonSmiles(out.smiles) == Chem.CanonSmiles(d.smiles)
    assert torch.equal(out.x.sort(dim=0).values, d.x.sort(dim=0).values)
    assert sorted(map(tuple, out.edge_attr.tolist())) == sorted(map(tuple, d.edge_attr.tolist()))
    assert aug("smiles_enumeration")(d, gen(0)).smiles == out.smiles


@pytest.mark.parametrize("name", ["atom_mask", "bond_delete", "subgraph_remove"])
def test_augmentation_ratio_checked(name):
    with pytest.raises(ValueError, match="ratio must be in"):
        aug(name, ratio=-0.1)


class TinyMolecules(ZooDataset):
    fields = {"molecule": "molecule"}

    def __len__(self):
        return len(SMILES)

    def __getitem__(self, i):
        return {"molecule": SMILES[i]}


def test_two_views_with_molclr_augmentations():
    torch.manual_seed(0)
    model = zoo.create_model(towers={"molecule": {"encoder": "gine", **TINY["gine"]}}, embed_dim=8)
    strategy = TwoViews(field="molecule", augment={"molecule": [{"name": "atom_mask"}, {"name": "bond_delete"}]})
    ds = TinyMolecules()
    batch = Collator(model, strategy, ds, seed=0)([(i, ds[i]) for i in range(len(ds))])
    (_, a), (_, b) = batch.views["molecule.1"], batch.views["molecule.2"]
    assert a.num_graphs == b.num_graphs == len(SMILES) and not torch.equal(a.x, b.x)
    assert model(batch.views)["molecule.1"].shape == (len(SMILES), 8)


# -- checkpoint ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", encoder_names())
def test_save_load_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model(towers={"molecule": {"encoder": name, **TINY[name]}}, embed_dim=8).eval()
    b = model.preprocess("molecule", SMILES)
    model.save_pretrained(tmp_path / "m")
    loaded = zoo.load(f"local-dir:{tmp_path / 'm'}").eval()
    assert torch.allclose(model.encode("molecule", b), loaded.encode("molecule", b), atol=1e-6)


# -- recipes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe, overrides", [
    ("molclr-nci5k.toml", {"model.towers.molecule.hidden": 32, "model.towers.molecule.layers": 3,
                           "model.towers.molecule.out_dim": 32, "model.embed_dim": 32}),
    ("molecule-text.toml", {"model.towers.molecule.hidden": 32, "eval.tasks": []}),
])
def test_recipe_trains(recipe, overrides, tmp_path):
    common = {"run.steps": 10, "run.log_every": 1, "run.progress": False, "data.options.size": 320,
              "data.batch_size": 32}
    result = zoo.train(ROOT / "recipes" / recipe, overrides={**common, **overrides}, run_dir=tmp_path / "run",
                       progress=False)
    losses = logged_losses(result.run_dir)
    assert len(losses) == 10 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses


def test_docs_samples_run(capsys):
    text = (ROOT / "docs" / "modalities" / "molecule.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks
    for i, code in enumerate(blocks):
        exec(compile(code, f"molecule.md block {i}", "exec"), {})
    assert "invalid SMILES 'CC(C' at position 3" in capsys.readouterr().out


def test_missing_rdkit_names_the_pip_extra(monkeypatch):
    import sys

    from zoo_graph._pyg import require
    monkeypatch.setitem(sys.modules, "rdkit.fake_part", None)
    with pytest.raises(zoo.PluginError, match=r"pip install 'zoo\[molecule\]'"):
        require("rdkit.fake_part", "molecule")
