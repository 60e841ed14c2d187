"""Symile, pairwise CLIP and anchored CLIP: parity with the ``symile`` package and open_clip, and
with naive transcriptions of the equations (masks, zero-shot MIP scores)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss as OpenClipLoss
from symile import MIPSimilarity, Symile

import zoo
from zoo.errors import ShapeError, UnknownNameError
from zoo.objectives._symile_kernels import MipLse, RowLse, mip_lse
from zoo.objectives.anchored_clip import AnchoredClipLoss
from zoo.objectives.pairwise_clip import PairwiseClipLoss
from zoo.objectives.symile import SymileLoss, mip_similarity

TOL = {"atol": 1e-5, "rtol": 1e-5}
F64 = torch.float64


def leaves(views=3, batch=6, dim=8, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g, dtype=dtype, requires_grad=True) for _ in range(views)]


def scale_leaf(value=3.0, dtype=F64):
    return torch.tensor(value, dtype=dtype, requires_grad=True)


def named(xs):
    return {f"v{i}": F.normalize(x, dim=1) for i, x in enumerate(xs)}


def assert_same(ours, ref, wrt):
    torch.testing.assert_close(ours, ref, **TOL)
    for g_ours, g_ref in zip(torch.autograd.grad(ours, wrt, retain_graph=True),
                             torch.autograd.grad(ref, wrt, retain_graph=True)):
        torch.testing.assert_close(g_ours, g_ref, **TOL)


def symile_ref(xs, s, mode, seed=0):
    torch.manual_seed(seed)
    return Symile(mode)([F.normalize(x, dim=1) for x in xs], s)


def symile_ours(xs, s, mode, seed=0, **kw):
    torch.manual_seed(seed)
    return SymileLoss(mode, **kw)(named(xs), logit_scale=s)


# -- registry ---------------------------------------------------------------------------------
def test_registered_and_buildable_through_the_registry():
    for name, cls in (("symile", SymileLoss), ("pairwise_clip", PairwiseClipLoss), ("anchored_clip", AnchoredClipLoss)):
        assert name in zoo.list_objectives()
        assert isinstance(zoo.create_objective(name), cls)
    assert zoo.create_objective("symile", negative_sampling="n_squared").negative_sampling == "n_squared"


def test_docstrings_give_paper_equation_shapes_example():
    for cls in (SymileLoss, PairwiseClipLoss, AnchoredClipLoss):
        doc = cls.__doc__
        assert "Paper:" in doc and "Shapes:" in doc and "Example:" in doc and "loss" in doc


# -- parity with the symile package -----------------------------------------------------------
@pytest.mark.parametrize("views", [3, 4])
def test_n_squared_matches_symile_package(views):
    xs, s = leaves(views, batch=5 if views == 4 else 7), scale_leaf()
    assert_same(symile_ours(xs, s, "n_squared"), symile_ref(xs, s, "n_squared"), [*xs, s])


@pytest.mark.parametrize("views", [2, 3, 4])
def test_n_matches_symile_package_under_the_same_seed(views):
    xs, s = leaves(views, batch=9), scale_leaf(5.0)
    for seed in (0, 1):
        assert_same(symile_ours(xs, s, "n", seed), symile_ref(xs, s, "n", seed), [*xs, s])


def test_n_with_own_generator_draws_like_the_seeded_global_one():
    xs, s = leaves(3), scale_leaf()
    gen = torch.Generator().manual_seed(7)
    ours = SymileLoss("n", generator=gen)(named(xs), logit_scale=s)
    torch.testing.assert_close(ours, symile_ref(xs, s, "n", seed=7), **TOL)


def test_float32_matches_symile_package():
    xs, s = leaves(3, batch=16, dim=32, dtype=torch.float32), scale_leaf(14.3, torch.float32)
    assert_same(symile_ours(xs, s, "n_squared"), symile_ref(xs, s, "n_squared"), [*xs, s])
    assert_same(symile_ours(xs, s, "n"), symile_ref(xs, s, "n"), [*xs, s])


def test_two_views_n_squared_is_clip():
    xs, s = leaves(2, batch=10), scale_leaf()
    a, b = (F.normalize(x, dim=1) for x in xs)
    assert_same(symile_ours(xs, s, "n_squared"), OpenClipLoss()(a, b, s), [*xs, s])


@pytest.mark.parametrize("mode", ["n", "n_squared"])
def test_blocked_and_recomputed_paths_equal_the_default(mode):
    xs, s = leaves(3, batch=7), scale_leaf()
    ref = symile_ref(xs, s, mode)
    for kw in ({"chunk_elements": 50, "save_elements": 0}, {"chunk_elements": 200, "save_elements": 10 ** 9},
               {"chunk_elements": 1}):
        assert_same(symile_ours(xs, s, mode, **kw), ref, [*xs, s])


def test_second_backward_with_retain_graph_recomputes():
    xs, s = leaves(3), scale_leaf()
    loss = symile_ours(xs, s, "n_squared")
    first = torch.autograd.grad(loss, xs, retain_graph=True)
    second = torch.autograd.grad(loss, xs)
    for g1, g2 in zip(first, second):
        torch.testing.assert_close(g1, g2, **TOL)


def test_wide_logit_range_falls_back_to_float64_in_float32():
    # a large scale: the logits span more (≈ 51) than one float32 shift per row covers (43.6)
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(6, 4, generator=g).requires_grad_() for _ in range(3)]
    s = torch.tensor(150.0, requires_grad=True)
    ours = SymileLoss("n_squared")(named(xs), logit_scale=s)
    ref = Symile("n_squared")([F.normalize(x.double(), dim=1) for x in xs], s.double())
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours.double(), ref, **TOL)
    ref_grads = torch.autograd.grad(ref, [*xs, s])
    for g_ours, g_ref in zip(torch.autograd.grad(ours, [*xs, s]), ref_grads):
        assert g_ours.dtype == torch.float32
        torch.testing.assert_close(g_ours.double(), g_ref.double(), **TOL)


def test_logits_beyond_float64_range_raise_a_clear_error():
    xs = [torch.randn(4, 4, dtype=F64) * 10 for _ in range(3)]
    with pytest.raises(ValueError, match="logit_scale"):
        SymileLoss("n_squared")({f"v{i}": x for i, x in enumerate(xs)}, logit_scale=1000.0)


def test_half_precision_inputs_are_computed_in_float32():
    xs, s = leaves(3, batch=8, dtype=torch.float32), scale_leaf(10.0, torch.float32)
    emb = named(xs)
    ref = SymileLoss("n_squared")(emb, logit_scale=s)
    low = SymileLoss("n_squared")({k: v.bfloat16() for k, v in emb.items()}, logit_scale=s)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, atol=0.05, rtol=0.02)


# -- the hand-written backward passes ---------------------------------------------------------
@pytest.mark.parametrize("views", [2, 3, 4])
@pytest.mark.parametrize("keep", [0, 10 ** 6])
def test_gradcheck_mip_lse(views, keep):
    g = torch.Generator().manual_seed(views)
    sizes = [3, 4, 2, 3][:views]
    xs = [torch.randn(n, 3, generator=g, dtype=F64, requires_grad=True) for n in sizes]
    ws = [torch.rand(n, generator=g, dtype=F64) * (torch.arange(n) != 1) for n in sizes]  # a zero weight
    s = torch.tensor(1.7, dtype=F64, requires_grad=True)

    def fn(scale, *x):
        return MipLse.apply(2, keep, views, scale, *x, *ws)  # blocks of 2 rows

    assert torch.autograd.gradcheck(fn, (s, *xs))


@pytest.mark.parametrize("keep", [0, 10 ** 6])
def test_gradcheck_row_lse(keep):
    g = torch.Generator().manual_seed(0)
    a, q = (torch.randn(5, 3, generator=g, dtype=F64, requires_grad=True) for _ in range(2))
    diag = torch.randn(5, generator=g, dtype=F64, requires_grad=True)
    s = torch.tensor(0.8, dtype=F64, requires_grad=True)
    bias = torch.tensor([0.0, float("-inf"), 0.0, 0.0, float("-inf")], dtype=F64)
    w = torch.tensor([0.1, 0.2, 0.0, 0.3, 0.4], dtype=F64)

    def fn(a, q, diag, s):
        return RowLse.apply(2, keep, a, q, diag, s, bias, w)

    assert torch.autograd.gradcheck(fn, (a, q, diag, s))


def test_mip_lse_is_the_log_partition_of_every_anchor():
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(n, 5, generator=g, dtype=F64) for n in (3, 4, 5)]
    t = torch.einsum("id,jd,kd->ijk", *xs) * 2.0
    for axis in range(3):
        ws = [torch.zeros(x.shape[0], dtype=F64) for x in xs]
        ws[axis][:] = 1.0
        want = torch.logsumexp(t.movedim(axis, 0).reshape(xs[axis].shape[0], -1), 1).sum()
        torch.testing.assert_close(mip_lse(xs, ws, torch.tensor(2.0, dtype=F64), chunk_elements=7), want)


# -- missing modalities -----------------------------------------------------------------------
def naive_masked_symile(xs, present, s):
    """Direct loops: anchors are complete rows, candidates every combination of present rows."""
    m, batch = len(xs), xs[0].shape[0]
    complete = [i for i in range(batch) if all(present[v][i] for v in range(m))]
    terms = []
    for anchor in range(m):
        others = [v for v in range(m) if v != anchor]
        pools = [[j for j in range(batch) if present[v][j]] for v in others]
        for i in complete:
            logits = []
            for combo in itertools.product(*pools):
                prod = xs[anchor][i].clone()
                for v, j in zip(others, combo):
                    prod = prod * xs[v][j]
                logits.append(s * prod.sum())
            positive = s * math.prod(x[i] for x in xs).sum()
            terms.append(torch.logsumexp(torch.stack(logits), 0) - positive)
    return torch.stack(terms).mean()


def test_masked_n_squared_matches_a_naive_transcription():
    xs, s = leaves(3, batch=6), scale_leaf()
    present = torch.tensor([[1, 1, 0, 1, 1, 1], [1, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 1]], dtype=torch.bool)
    mask = {f"v{i}": present[i] for i in range(3)}
    ours = SymileLoss("n_squared", chunk_elements=20)(named(xs), logit_scale=s, mask=mask)
    ref = naive_masked_symile([F.normalize(x, dim=1) for x in xs], present, s)
    assert_same(ours, ref, [*xs, s])


@pytest.mark.parametrize("mode", ["n", "n_squared"])
def test_missing_embedding_has_no_influence(mode):
    xs, s = leaves(3, batch=7), scale_leaf()
    mask = {"v1": torch.tensor([True, True, False, True, True, False, True])}
    emb = named(xs)
    torch.manual_seed(0)
    base = SymileLoss(mode)(emb, logit_scale=s, mask=mask)
    corrupted = dict(emb, v1=emb["v1"].clone())
    corrupted["v1"][2] = float("nan")
    corrupted["v1"][5] = 100.0
    torch.manual_seed(0)
    other = SymileLoss(mode)(corrupted, logit_scale=s, mask=mask)
    torch.testing.assert_close(other, base, **TOL)
    leaf = emb["v1"].detach().requires_grad_()
    torch.manual_seed(0)
    grad = torch.autograd.grad(SymileLoss(mode)(dict(emb, v1=leaf), logit_scale=s, mask=mask), leaf)[0]
    assert torch.equal(grad[2], torch.zeros_like(grad[2])) and torch.equal(grad[5], torch.zeros_like(grad[5]))
    assert grad[0].abs().sum() > 0


@pytest.mark.parametrize("mode", ["n", "n_squared"])
def test_all_present_mask_equals_no_mask(mode):
    xs, s = leaves(3), scale_leaf()
    mask = {f"v{i}": torch.ones(6, dtype=torch.bool) for i in range(3)}
    torch.manual_seed(0)
    masked = SymileLoss(mode)(named(xs), logit_scale=s, mask=mask)
    assert_same(masked, symile_ours(xs, s, mode), [*xs, s])


def test_masked_n_drops_candidates_with_a_missing_view():
    xs, s = leaves(3, batch=6), scale_leaf()
    present = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 1, 1], [1, 1, 1, 0, 1, 1]], dtype=torch.bool)
    ys = [F.normalize(x, dim=1) for x in xs]
    torch.manual_seed(4)
    ours = SymileLoss("n")({f"v{i}": y for i, y in enumerate(ys)}, logit_scale=s,
                           mask={f"v{i}": present[i] for i in range(3)})
    torch.manual_seed(4)  # naive: the same permutations, candidates kept only where all views exist
    complete = present.all(0)
    terms = []
    for anchor in range(3):
        perms = {v: torch.randperm(6) for v in range(3) if v != anchor}
        for i in range(6):
            if not complete[i]:
                continue
            logits = []
            for j in range(6):
                if j == i:
                    logits.append(s * math.prod(y[i] for y in ys).sum())
                elif all(present[v][p[j]] for v, p in perms.items()):
                    logits.append(s * (ys[anchor][i] * math.prod(ys[v][p[j]] for v, p in perms.items())).sum())
            terms.append(torch.logsumexp(torch.stack(logits), 0) - s * math.prod(y[i] for y in ys).sum())
    assert_same(ours, torch.stack(terms).mean(), [*xs, s])


@pytest.mark.parametrize("mode", ["n", "n_squared"])
def test_no_complete_row_gives_zero_with_a_graph(mode):
    xs, s = leaves(3, batch=4), scale_leaf()
    mask = {"v0": torch.tensor([True, False, True, False]), "v2": torch.tensor([False, True, False, True])}
    loss = SymileLoss(mode)(named(xs), logit_scale=s, mask=mask)
    assert loss.item() == 0.0
    loss.backward()
    assert xs[0].grad is not None and s.grad is not None


# -- zero-shot scores -------------------------------------------------------------------------
def test_mip_similarity_matches_a_naive_loop_and_the_package():
    g = torch.Generator().manual_seed(0)
    qa, qb, cands = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g), torch.randn(5, 6, generator=g)
    scores = mip_similarity({"audio": qa, "text": qb}, cands)
    assert scores.shape == (4, 5)
    naive = torch.tensor([[sum(qa[i, d] * qb[i, d] * cands[c, d] for d in range(6)) for c in range(5)]
                          for i in range(4)])
    torch.testing.assert_close(scores, naive, **TOL)
    torch.testing.assert_close(scores, MIPSimilarity()(cands, [qa, qb]), **TOL)
    torch.testing.assert_close(mip_similarity({"text": qb}, cands), qb @ cands.T, **TOL)


# -- pairwise and anchored CLIP ---------------------------------------------------------------
def open_clip_pair(a, b, s):
    return OpenClipLoss()(a, b, s)


@pytest.mark.parametrize("views", [2, 3, 4])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_pairwise_clip_is_the_sum_of_open_clip_over_pairs(views, reduction):
    xs, s = leaves(views, batch=8), scale_leaf()
    ys = [F.normalize(x, dim=1) for x in xs]
    terms = [open_clip_pair(ys[i], ys[j], s) for i, j in itertools.combinations(range(views), 2)]
    ref = sum(terms) / (len(terms) if reduction == "mean" else 1)
    assert_same(PairwiseClipLoss(reduction)(named(xs), logit_scale=s), ref, [*xs, s])


def test_pairwise_clip_mask_uses_rows_where_both_are_present():
    xs, s = leaves(3, batch=8), scale_leaf()
    ys = [F.normalize(x, dim=1) for x in xs]
    present = torch.ones(3, 8, dtype=torch.bool)
    present[0, [1, 4]] = False
    present[2, [4, 6]] = False
    ref = sum(open_clip_pair(ys[i][present[i] & present[j]], ys[j][present[i] & present[j]], s)
              for i, j in itertools.combinations(range(3), 2))
    ours = PairwiseClipLoss()(named(xs), logit_scale=s, mask={f"v{i}": present[i] for i in range(3)})
    assert_same(ours, ref, [*xs, s])


@pytest.mark.parametrize("anchor", [None, "v2"])
def test_anchored_clip_contrasts_each_view_with_the_anchor_only(anchor):
    xs, s = leaves(4, batch=8), scale_leaf()
    ys = [F.normalize(x, dim=1) for x in xs]
    a = 0 if anchor is None else 2
    ref = sum(open_clip_pair(ys[a], ys[v], s) for v in range(4) if v != a)
    assert_same(AnchoredClipLoss(anchor)(named(xs), logit_scale=s), ref, [*xs, s])
    mean = AnchoredClipLoss(anchor, reduction="mean")(named(xs), logit_scale=s)
    torch.testing.assert_close(mean, ref / 3, **TOL)


def test_anchored_clip_mask_and_unknown_anchor():
    xs, s = leaves(3, batch=6), scale_leaf()
    ys = [F.normalize(x, dim=1) for x in xs]
    keep = torch.tensor([True, False, True, True, False, True])
    ref = open_clip_pair(ys[0][keep], ys[1][keep], s) + open_clip_pair(ys[0], ys[2], s)
    assert_same(AnchoredClipLoss()(named(xs), logit_scale=s, mask={"v1": keep}), ref, [*xs, s])
    with pytest.raises(UnknownNameError, match="v0, v1, v2"):
        AnchoredClipLoss(anchor="image")(named(xs), logit_scale=s)


def test_a_pair_with_no_common_row_is_left_out():
    xs, s = leaves(3, batch=4), scale_leaf()
    ys = [F.normalize(x, dim=1) for x in xs]
    mask = {"v0": torch.tensor([True, True, False, False]), "v1": torch.tensor([False, False, True, True])}
    ours = PairwiseClipLoss("mean")(named(xs), logit_scale=s, mask=mask)
    ref = (open_clip_pair(ys[0][:2], ys[2][:2], s) + open_clip_pair(ys[1][2:], ys[2][2:], s)) / 2
    assert_same(ours, ref, [*xs, s])


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", [SymileLoss(), SymileLoss("n_squared"), PairwiseClipLoss(), AnchoredClipLoss()])
def test_shape_errors(loss):
    x = torch.randn(4, 8)
    with pytest.raises(ShapeError, match="at least 2"):
        loss({"a": x}, logit_scale=1.0)
    with pytest.raises(ShapeError, match="expected shape"):
        loss({"a": x, "b": torch.randn(4, 6), "c": x}, logit_scale=1.0)
    with pytest.raises(ShapeError, match="expected shape"):
        loss({"a": x, "b": torch.randn(3, 8)}, logit_scale=1.0)


def test_bad_options_and_masks():
    with pytest.raises(ValueError, match="negative_sampling"):
        SymileLoss("n_cubed")
    with pytest.raises(ValueError, match="chunk_elements"):
        SymileLoss(chunk_elements=0)
    with pytest.raises(ValueError, match="reduction"):
        PairwiseClipLoss("max")
    with pytest.raises(ValueError, match="reduction"):
        AnchoredClipLoss(reduction="none")
    with pytest.raises(ValueError, match="anchor"):
        AnchoredClipLoss(anchor=0)
    x = torch.randn(4, 8)
    with pytest.raises(ShapeError, match=r"mask\['a'\] expected shape \(4,\)"):
        SymileLoss()({"a": x, "b": x}, logit_scale=1.0, mask={"a": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ShapeError, match="empty batch"):
        SymileLoss()({"a": x[:0], "b": x[:0]}, logit_scale=1.0)
    with pytest.raises(ShapeError, match=r"candidates expected shape \(C, 8\)"):
        mip_similarity({"a": x, "b": x}, torch.randn(5, 7))
