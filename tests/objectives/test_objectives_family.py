"""DCL, debiased, hard negatives, MoCHi, SupCon and alignment/uniformity: parity with the
reference packages (lightly, pytorch_metric_learning) or with naive transcriptions of the papers."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.errors import ShapeError
from zoo.objectives.align_uniform import AlignUniformLoss, alignment, uniformity
from zoo.objectives.dcl import DCLLoss
from zoo.objectives.debiased import DebiasedContrastiveLoss
from zoo.objectives.hard_negative import HardNegativeLoss
from zoo.objectives.mochi import MoCHiLoss
from zoo.objectives.supcon import SupConLoss

TOL = dict(atol=1e-5, rtol=1e-5)
FAMILY = ["dcl", "debiased", "hard_negative", "mochi", "supcon", "align_uniform", "hierarchical"]


def raw(batch=8, dim=16, seed=0, views=2):
    """Leaf tensors (not normalised) so gradients are compared w.r.t. the encoder output."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(views)]


def scale_leaf(value=2.5):
    return torch.tensor(value, dtype=torch.float64, requires_grad=True)


def grads(loss, leaves):
    return torch.autograd.grad(loss, leaves, retain_graph=True)


def assert_same(ours, ref, leaves):
    torch.testing.assert_close(ours, ref, **TOL)
    for g_ours, g_ref in zip(grads(ours, leaves), grads(ref, leaves)):
        torch.testing.assert_close(g_ours, g_ref, **TOL)


def unit(*xs):
    return [F.normalize(x, dim=1) for x in xs]


# -- registry ---------------------------------------------------------------------------------
def test_every_objective_is_registered_and_buildable():
    names = zoo.list_objectives()
    for name in FAMILY:
        assert name in names
    for name in FAMILY[:-1]:
        assert isinstance(zoo.create_objective(name), torch.nn.Module)


def test_every_objective_documents_paper_equation_shapes_example():
    for cls in (DCLLoss, DebiasedContrastiveLoss, HardNegativeLoss, MoCHiLoss, SupConLoss, AlignUniformLoss):
        doc = cls.__doc__
        for part in ("Paper", "quation", "Shapes", "Example"):
            assert part in doc, (cls.__name__, part)


# -- DCL --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [None, 0.5])
def test_dcl_matches_lightly(sigma):
    from lightly.loss import DCLLoss as LightlyDCL
    from lightly.loss import DCLWLoss as LightlyDCLW

    x1, x2 = raw(seed=1)
    s = scale_leaf(3.0)
    a, b = unit(x1, x2)
    ours = DCLLoss(weight_sigma=sigma)({"a": a, "b": b}, logit_scale=s)
    ref_fn = LightlyDCL(temperature=1 / s) if sigma is None else LightlyDCLW(temperature=1 / s, sigma=sigma)
    with warnings.catch_warnings():   # lightly's DCLW calls torch.tensor() on a tensor and warns
        warnings.simplefilter("ignore")
        ref = ref_fn(a, b)
    assert_same(ours, ref, [x1, x2, s])


def test_dcl_weighting_changes_the_loss_and_rejects_bad_sigma():
    a, b = unit(*raw(seed=2))
    plain = DCLLoss()({"a": a, "b": b}, logit_scale=5.0)
    weighted = DCLLoss(weight_sigma=0.5)({"a": a, "b": b}, logit_scale=5.0)
    assert not torch.isclose(plain, weighted)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="weight_sigma"):
            DCLLoss(weight_sigma=bad)


# -- debiased / hard negatives: naive transcriptions ------------------------------------------
def naive_hcl(a, b, s, tau_plus, beta):
    """The papers' estimator written out anchor by anchor (Chuang et al. eq. 6; Robinson et al. code)."""
    z = torch.cat([a, b])
    n_rows = a.shape[0]
    n = 2 * n_rows - 2
    total = 0
    for i in range(2 * n_rows):
        j_pos = (i + n_rows) % (2 * n_rows)
        pos = torch.exp(s * (z[i] @ z[j_pos]))
        negs = [torch.exp(s * (z[i] @ z[j])) for j in range(2 * n_rows) if j not in (i, j_pos)]
        imp = [neg ** beta for neg in negs]                         # e^{β s z_i·z_j}
        reweighted = sum(w * neg for w, neg in zip(imp, negs)) / (sum(imp) / n)
        ng = (-tau_plus * n * pos + reweighted) / (1 - tau_plus)
        ng = torch.maximum(ng, n * torch.exp(-s))                 # N·e^{−1/t}
        total = total - torch.log(pos / (pos + ng))
    return total / (2 * n_rows)


@pytest.mark.parametrize("tau_plus", [0.0, 0.1, 0.3])
def test_debiased_matches_naive_transcription(tau_plus):
    x1, x2 = raw(seed=3)
    s = scale_leaf(2.0)
    a, b = unit(x1, x2)
    ours = DebiasedContrastiveLoss(tau_plus=tau_plus)({"a": a, "b": b}, logit_scale=s)
    assert_same(ours, naive_hcl(a, b, s, tau_plus, beta=0.0), [x1, x2, s])


def test_debiased_clamp_is_exercised_and_matches():
    """A large τ⁺ with well-aligned positives drives the estimate below N·e^{−1/t}."""
    x1 = raw(seed=4)[0]
    x2 = (x1.detach() + 0.01 * torch.randn_like(x1)).requires_grad_(True)
    s = scale_leaf(3.0)
    a, b = unit(x1, x2)
    from zoo.objectives._two_view import two_view_scores
    pos, logits, not_negative = two_view_scores(a, b, s)
    n = 14
    raw_ng = (logits.exp().masked_fill(not_negative, 0).sum(1) - 0.9 * n * pos.exp()) / 0.1
    assert (raw_ng < n * torch.exp(-s)).any()                      # the clamp is active somewhere
    ours = DebiasedContrastiveLoss(tau_plus=0.9)({"a": a, "b": b}, logit_scale=s)
    assert_same(ours, naive_hcl(a, b, s, 0.9, beta=0.0), [x1, x2, s])


def test_debiased_with_zero_prior_is_ntxent():
    from lightly.loss import NTXentLoss

    x1, x2 = raw(seed=5)
    s = scale_leaf(4.0)
    a, b = unit(x1, x2)
    ours = DebiasedContrastiveLoss(tau_plus=0.0)({"a": a, "b": b}, logit_scale=s)
    assert_same(ours, NTXentLoss(temperature=1 / s)(a, b), [x1, x2, s])


@pytest.mark.parametrize("beta,tau_plus", [(1.0, 0.1), (0.5, 0.0), (2.0, 0.2)])
def test_hard_negative_matches_naive_transcription(beta, tau_plus):
    x1, x2 = raw(seed=6)
    s = scale_leaf(2.0)
    a, b = unit(x1, x2)
    ours = HardNegativeLoss(beta=beta, tau_plus=tau_plus)({"a": a, "b": b}, logit_scale=s)
    assert_same(ours, naive_hcl(a, b, s, tau_plus, beta), [x1, x2, s])


def test_hard_negative_beta_zero_is_debiased_and_large_scale_is_finite():
    a, b = unit(*raw(seed=7))
    emb = {"a": a, "b": b}
    torch.testing.assert_close(HardNegativeLoss(beta=0.0, tau_plus=0.1)(emb, logit_scale=2.0),
                               DebiasedContrastiveLoss(tau_plus=0.1)(emb, logit_scale=2.0), **TOL)
    a32, b32 = a.float().detach().requires_grad_(), b.float().detach().requires_grad_()
    for obj in (HardNegativeLoss(), DebiasedContrastiveLoss()):
        loss = obj({"a": a32, "b": b32}, logit_scale=100.0)        # exp(100) overflows float32
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(a32.grad).all()


def test_debiased_and_hard_negative_reject_bad_settings():
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="tau_plus"):
            DebiasedContrastiveLoss(tau_plus=bad)
        with pytest.raises(ValueError, match="tau_plus"):
            HardNegativeLoss(tau_plus=bad)
    with pytest.raises(ValueError, match="beta"):
        HardNegativeLoss(beta=-1.0)


# -- MoCHi ------------------------------------------------------------------------------------
def infonce(q, k, s, queue=None):
    keys = k if queue is None else torch.cat([k, queue])
    return F.cross_entropy(q @ keys.T * s, torch.arange(q.shape[0]))


@pytest.mark.parametrize("with_queue", [False, True])
def test_mochi_without_mixing_is_infonce(with_queue):
    x1, x2 = raw(seed=8)
    s = scale_leaf(5.0)
    a, b = unit(x1, x2)
    queue = F.normalize(torch.randn(12, 16, dtype=torch.float64), dim=1) if with_queue else None
    emb = {"a": a, "b": b}
    sym = MoCHiLoss(n_mix=0, n_mix_query=0)(emb, logit_scale=s, queue=queue)
    assert_same(sym, (infonce(a, b, s, queue) + infonce(b, a, s, queue)) / 2, [x1, x2, s])
    one_way = MoCHiLoss(n_mix=0, n_mix_query=0, symmetric=False)(emb, logit_scale=s, queue=queue)
    assert_same(one_way, infonce(a, b, s, queue), [x1, x2, s])


@pytest.mark.parametrize("queue_size", [0, 10, 100])   # 100: n_i·n_j by gathering, not by the Gram matrix
def test_mochi_closed_form_equals_the_explicit_synthetic_negatives(queue_size):
    """forward never builds the (B, S, D) points; it must equal InfoNCE over the built ones."""
    x1, x2 = raw(seed=18)
    s = scale_leaf(4.0)
    a, b = unit(x1, x2)
    queue = F.normalize(torch.randn(queue_size, 16, dtype=torch.float64), dim=1) if queue_size else None
    obj = MoCHiLoss(n_hard=5, n_mix=7, n_mix_query=4, symmetric=False, seed=None)
    ours = obj({"a": a, "b": b}, logit_scale=s, queue=queue, generator=torch.Generator().manual_seed(3))
    keys = b if queue is None else torch.cat([b, queue])
    sim = a @ keys.T
    hardness = sim.detach().clone()
    hardness[torch.arange(8), torch.arange(8)] = float("-inf")
    synth = obj.mix_negatives(a, keys, hardness, torch.Generator().manual_seed(3))   # (B, 11, D) constants
    logits = torch.cat([sim, torch.einsum("bd,bsd->bs", a, synth)], dim=1) * s
    assert_same(ours, F.cross_entropy(logits, torch.arange(8)), [x1, x2, s])


def test_mochi_mixed_negatives_are_unit_and_among_the_hardest():
    g = torch.Generator().manual_seed(9)
    q = F.normalize(torch.rand(6, 8, generator=g, dtype=torch.float64), dim=1)      # positive orthant:
    cand = F.normalize(torch.rand(30, 8, generator=g, dtype=torch.float64), dim=1)  # every similarity ≥ 0
    sim = q @ cand.T
    sim[torch.arange(6), torch.arange(6)] = float("-inf")             # candidate i is query i's positive
    obj = MoCHiLoss(n_hard=5, n_mix=40, n_mix_query=20)
    synth = obj.mix_negatives(q, cand, sim, torch.Generator().manual_seed(0))
    assert synth.shape == (6, 60, 8) and not synth.requires_grad
    torch.testing.assert_close(synth.norm(dim=-1), torch.ones(6, 60, dtype=torch.float64))
    fifth_hardest = sim.topk(5, dim=1).values[:, -1:]                 # (B, 1)
    assert (torch.einsum("bd,bsd->bs", q, synth) >= fifth_hardest - 1e-12).all()


def test_mochi_with_one_hard_negative_mixes_the_hardest_itself():
    q, k = unit(*raw(seed=10))
    q, k = q.detach(), k.detach()
    sim = q @ k.T
    sim.fill_diagonal_(float("-inf"))
    synth = MoCHiLoss(n_hard=1, n_mix=3, n_mix_query=0).mix_negatives(q, k, sim, torch.Generator().manual_seed(1))
    hardest = k[sim.argmax(dim=1)]                                    # (B, D)
    torch.testing.assert_close(synth, hardest[:, None, :].expand_as(synth))


def test_mochi_is_deterministic_under_a_seed_and_gets_no_gradient_through_synthetics():
    a, b = unit(*raw(seed=11))
    emb = {"a": a, "b": b}
    kw = dict(n_hard=4, n_mix=6, n_mix_query=3)
    first, second = MoCHiLoss(seed=3, **kw), MoCHiLoss(seed=3, **kw)
    torch.testing.assert_close(first(emb, logit_scale=4.0), second(emb, logit_scale=4.0), atol=0, rtol=0)
    assert not torch.equal(first(emb, logit_scale=4.0), MoCHiLoss(seed=4, **kw)(emb, logit_scale=4.0))
    gen_loss = [MoCHiLoss(seed=None, **kw)(emb, logit_scale=4.0, generator=torch.Generator().manual_seed(7))
                for _ in range(2)]
    assert torch.equal(*gen_loss)
    mixing = MoCHiLoss(n_mix=2, n_mix_query=2)
    assert mixing(emb, logit_scale=4.0) > MoCHiLoss(n_mix=0, n_mix_query=0)(emb, logit_scale=4.0)


def test_mochi_rejects_bad_settings_and_shapes():
    for kw in ({"n_hard": 0}, {"n_mix": -1}, {"n_mix_query": 1.5}):
        with pytest.raises(ValueError):
            MoCHiLoss(**kw)
    a, b = unit(*raw())
    with pytest.raises(ShapeError, match="queue"):
        MoCHiLoss()({"a": a, "b": b}, logit_scale=1.0, queue=torch.zeros(3, 5))


# -- SupCon -----------------------------------------------------------------------------------
@pytest.mark.parametrize("views", [1, 2, 3])
def test_supcon_matches_pytorch_metric_learning(views):
    from pytorch_metric_learning.losses import SupConLoss as PMLSupCon

    xs = raw(batch=10, seed=12, views=views)
    y = torch.tensor([0, 1, 0, 2, 1, 0, 3, 4, 2, 5])                   # 3, 4, 5 are singletons
    s = scale_leaf(6.0)
    zs = unit(*xs)
    ours = SupConLoss()({f"v{i}": z for i, z in enumerate(zs)}, logit_scale=s, labels={"class": y})
    ref = PMLSupCon(temperature=1 / s)(torch.cat(zs), y.repeat(views))
    assert_same(ours, ref, [*xs, s])


def naive_supcon(zs, y, s):
    """Khosla et al. eq. 2 written out, anchors without positives left out of the mean."""
    z, y = torch.cat(zs), y.repeat(len(zs))
    terms = []
    for i in range(len(z)):
        others = [a for a in range(len(z)) if a != i]
        positives = [p for p in others if y[p] == y[i]]
        if positives:
            denom = sum(torch.exp(s * z[i] @ z[a]) for a in others)
            terms.append(-sum(torch.log(torch.exp(s * z[i] @ z[p]) / denom) for p in positives) / len(positives))
    return sum(terms) / len(terms)


def test_supcon_without_negatives_follows_the_equation_where_pml_returns_zero():
    from pytorch_metric_learning.losses import SupConLoss as PMLSupCon

    xs = raw(batch=6, seed=13)
    s = scale_leaf(3.0)
    zs = unit(*xs)
    y = torch.zeros(6, dtype=torch.long)
    ours = SupConLoss()({"a": zs[0], "b": zs[1]}, logit_scale=s, labels={"c": y})
    assert PMLSupCon(temperature=1 / s)(torch.cat(zs), y.repeat(2)).item() == 0.0
    assert ours.item() > 0
    assert_same(ours, naive_supcon(zs, y, s), [*xs, s])


def test_supcon_without_any_positive_is_zero_and_differentiable():
    xs = raw(batch=5, seed=14, views=1)
    s = scale_leaf()
    loss = SupConLoss()({"a": unit(*xs)[0]}, logit_scale=s, labels={"c": torch.arange(5)})
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(xs[0].grad, torch.zeros_like(xs[0]))


def test_supcon_label_choice_and_errors():
    a, b = unit(*raw(seed=15))
    y1, y2 = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    emb = {"a": a, "b": b}
    both = {"genus": y1, "species": y2}
    torch.testing.assert_close(SupConLoss(label="species")(emb, logit_scale=2.0, labels=both),
                               SupConLoss()(emb, logit_scale=2.0, labels={"x": y2}))
    with pytest.raises(ValueError, match="label="):
        SupConLoss()(emb, logit_scale=2.0, labels=both)
    with pytest.raises(ShapeError, match="labels"):
        SupConLoss()(emb, logit_scale=2.0)
    with pytest.raises(ShapeError, match="family"):
        SupConLoss(label="family")(emb, logit_scale=2.0, labels=both)
    with pytest.raises(ShapeError, match=r"expected shape \(8,\)"):
        SupConLoss()(emb, logit_scale=2.0, labels={"c": torch.zeros(7, dtype=torch.long)})
    with pytest.raises(ValueError, match="label"):
        SupConLoss(label="")


# -- alignment and uniformity -----------------------------------------------------------------
def ref_align(x, y, alpha=2):          # Wang & Isola's reference code
    return (x - y).norm(p=2, dim=1).pow(alpha).mean()


def ref_uniform(x, t=2):
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()


@pytest.mark.parametrize("alpha,t,lam", [(2, 2, 1.0), (1, 3, 0.5)])
def test_align_uniform_matches_reference_code(alpha, t, lam):
    x1, x2 = raw(seed=16)
    a, b = unit(x1, x2)
    ours = AlignUniformLoss(alpha=alpha, t=t, lam=lam)({"a": a, "b": b}, logit_scale=1.0)
    ref = ref_align(a, b, alpha) + lam * (ref_uniform(a, t) + ref_uniform(b, t)) / 2
    assert_same(ours, ref, [x1, x2])
    assert_same(alignment(a, b, alpha), ref_align(a, b, alpha), [x1, x2])
    assert_same(uniformity(a, t), ref_uniform(a, t), [x1])


def test_align_uniform_metrics_on_known_configurations():
    e = torch.eye(4, dtype=torch.float64)
    assert alignment(e, e).item() == 0.0
    # the 4 basis vectors: every squared distance is 2 → log exp(−2·2) = −4
    assert math.isclose(uniformity(e).item(), -4.0, abs_tol=1e-12)
    with pytest.raises(ShapeError):
        uniformity(e[:1])
    with pytest.raises(ShapeError):
        alignment(e, e[:3])
    for kw in ({"alpha": 0}, {"t": -1}, {"lam": -0.5}):
        with pytest.raises(ValueError):
            AlignUniformLoss(**kw)


# -- shared input checks ----------------------------------------------------------------------
TWO_VIEW = [DCLLoss, DebiasedContrastiveLoss, HardNegativeLoss, MoCHiLoss, AlignUniformLoss]


@pytest.mark.parametrize("cls", TWO_VIEW)
def test_two_view_objectives_reject_wrong_views_and_tiny_batches(cls):
    a, b, c = unit(*raw(views=3))
    with pytest.raises(ShapeError, match="exactly 2"):
        cls()({"a": a, "b": b, "c": c}, logit_scale=1.0)
    with pytest.raises(ShapeError, match="exactly 2"):
        cls()({"a": a}, logit_scale=1.0)
    with pytest.raises(ShapeError):
        cls()({"a": a[:1], "b": b[:1]}, logit_scale=1.0)
    with pytest.raises(ShapeError):
        cls()({"a": a, "b": b[:, :3]}, logit_scale=1.0)


@pytest.mark.parametrize("cls", TWO_VIEW + [SupConLoss])
def test_float_logit_scale_and_gradients_are_finite(cls):
    x1, x2 = raw(seed=17)
    a, b = unit(x1, x2)
    loss = cls()({"a": a, "b": b}, logit_scale=14.3, labels={"c": torch.arange(8) % 3})
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert torch.isfinite(x1.grad).all() and x1.grad.abs().sum() > 0
