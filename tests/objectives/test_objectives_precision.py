"""Every built-in objective in low precision and to second order (issue 12 §6), parametrised over the registry.

* bf16/fp16 embeddings give the loss of their rounded values to float32 accuracy (the float64
  loss of the same rounded inputs), also under autocast, with finite values where fp16 overflows;
* ``create_graph=True`` gives the same gradient as the fast backward, *with* a graph, and the
  second-order gradients pass ``gradgradcheck`` (never a silent zero).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.objectives import _BUILTIN

BUILTIN = sorted(name for name, *_ in _BUILTIN)
THREE_VIEWS = {"symile", "pairwise_clip", "anchored_clip"}
SETUPS = {  # options that make each objective deterministic and small enough for these checks
    "align_uniform": {}, "anchored_clip": {}, "clip": {}, "clip/chunked": {"chunk_size": 3},
    "dcl": {}, "debiased": {"tau_plus": 0.1}, "hard_negative": {"beta": 1.0, "tau_plus": 0.1},
    "mochi": {"n_hard": 4, "n_mix": 3, "n_mix_query": 2, "seed": 0}, "pairwise_clip": {},
    "siglip": {}, "siglip/chunked": {"chunk_size": 3}, "supcon": {}, "symile": {"negative_sampling": "n_squared"},
    "symile/n": {"negative_sampling": "n", "generator": "seeded"},
    "hierarchical": {"levels": [{"name": "row", "views": ["x", "y"]},
                                {"name": "class", "views": ["x", "y"], "positives": "class", "weight": 0.5}]},
}
CASES = sorted(SETUPS)


def build(case: str):
    options = dict(SETUPS[case])
    if options.get("generator") == "seeded":
        options["generator"] = torch.Generator()
    return zoo.create_objective(case.split("/")[0], **options)


def run(loss_fn, views, scale=12.0, bias=-4.0):
    """The loss on ``views`` with the objective's random draws (if any) reset: the same draws every call."""
    gen = getattr(loss_fn, "generator", None)
    if gen is not None:
        gen.manual_seed(0)
    names = ["x", "y", "z"][:len(views)]
    labels = {"class": torch.arange(views[0].shape[0]) % 3}
    return loss_fn(dict(zip(names, views)), logit_scale=scale, logit_bias=bias, labels=labels)


def unit_views(case: str, n: int, d: int, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d, generator=g, dtype=torch.float64)
    count = 3 if case.split("/")[0] in THREE_VIEWS else 2
    return [F.normalize(base + 0.7 * torch.randn(n, d, generator=g, dtype=torch.float64), dim=1).to(dtype)
            for _ in range(count)]


def test_every_builtin_objective_has_a_setup_here():
    assert sorted({case.split("/")[0] for case in CASES}) == BUILTIN


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("case", CASES)
def test_half_precision_is_the_loss_of_the_rounded_inputs(case, dtype):
    loss_fn = build(case)
    half = [v.requires_grad_() for v in unit_views(case, 24, 16, dtype)]
    wide = [v.detach().double().requires_grad_() for v in half]
    # mochi draws its mixing coefficients in the embeddings' dtype: compare it with float32 draws
    ref_dtype = torch.float32 if case == "mochi" else torch.float64
    got, want = run(loss_fn, half), run(loss_fn, [v.to(ref_dtype) for v in wide])
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want.double(), rtol=2e-6, atol=2e-6)
    for g_half, g_wide in zip(torch.autograd.grad(got, half), torch.autograd.grad(want, wide)):
        assert g_half.dtype == dtype  # the gradient of a bf16 leaf is bf16: the float32 one, rounded
        ulp = torch.finfo(dtype).eps  # one rounding to the half dtype, and float32 noise far below it
        torch.testing.assert_close(g_half.double(), g_wide, rtol=ulp, atol=ulp * g_wide.abs().max().item())


@pytest.mark.parametrize("case", CASES)
def test_autocast_does_not_lower_the_objectives_precision(case):
    loss_fn = build(case)
    views = unit_views(case, 24, 16, torch.float32)
    plain = run(loss_fn, views)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = run(loss_fn, views)
    assert under.dtype == torch.float32
    torch.testing.assert_close(under, plain, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_second_order_gradients_are_real(case):
    loss_fn = build(case)
    views = [v.requires_grad_() for v in unit_views(case, 5, 3)]
    scale = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    first = torch.autograd.grad(run(loss_fn, views, scale), [*views, scale], allow_unused=True)
    graph = torch.autograd.grad(run(loss_fn, views, scale), [*views, scale], create_graph=True, allow_unused=True)
    for fast, slow in zip(first, graph):
        if fast is None:  # e.g. align_uniform has no temperature
            continue
        assert slow.requires_grad  # a graph, not a constant: the penalty below has a gradient
        torch.testing.assert_close(slow.detach(), fast, rtol=1e-10, atol=1e-12)

    def loss_of(*xs):
        return run(loss_fn, list(xs[:-1]), xs[-1])

    if case != "mochi":  # mochi's synthetic negatives are constants by design: its gradient is not d(value)
        assert torch.autograd.gradcheck(loss_of, (*views, scale), fast_mode=True)
        assert torch.autograd.gradgradcheck(loss_of, (*views, scale), fast_mode=True)
