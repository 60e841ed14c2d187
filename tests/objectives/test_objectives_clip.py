"""CLIP and SigLIP objectives: parity with open_clip, chunked == dense, errors, gradcheck, memory."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss as OpenClipLoss
from open_clip.loss import SigLipLoss as OpenSigLipLoss

import zoo
from zoo.errors import ShapeError
from zoo.objectives.clip import ClipLoss, _ClipFunction, clip_loss
from zoo.objectives.siglip import SigLipLoss, _SigLipFunction, siglip_loss

TOL = {"atol": 1e-5, "rtol": 1e-5}


def views(n, d, *, seed=0, dtype=torch.float32):
    """Two aligned L2-normalised views with correlated rows, as leaf tensors."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d, generator=g, dtype=dtype)
    a = F.normalize(base + 0.5 * torch.randn(n, d, generator=g, dtype=dtype), dim=1)
    b = F.normalize(base + 0.5 * torch.randn(n, d, generator=g, dtype=dtype), dim=1)
    return a.requires_grad_(), b.requires_grad_()


def scalar(value, dtype=torch.float32):
    return torch.tensor(value, dtype=dtype, requires_grad=True)


def value_and_grads(loss, inputs):
    return [loss.detach(), *torch.autograd.grad(loss, inputs)]


def naive_clip(a, b, scale, smoothing):
    """Both directions of torch's cross_entropy on the two logits matrices."""
    target = torch.arange(a.shape[0])
    forward = F.cross_entropy(scale * a @ b.T, target, label_smoothing=smoothing)
    backward = F.cross_entropy(scale * b @ a.T, target, label_smoothing=smoothing)
    return (forward + backward) / 2


# ------------------------------------------------------------------------------ parity

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed,n,d", [(0, 8, 16), (1, 31, 8), (2, 32, 64)])
@pytest.mark.parametrize("chunk", [None, 5])
def test_clip_matches_open_clip(dtype, seed, n, d, chunk):
    a, b = views(n, d, seed=seed, dtype=dtype)
    s = scalar(14.3 + seed, dtype)
    ours = ClipLoss(chunk_size=chunk)({"image": a, "text": b}, logit_scale=s)
    ref = OpenClipLoss()(a, b, s)
    for got, want in zip(value_and_grads(ours, (a, b, s)), value_and_grads(ref, (a, b, s))):
        torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("smoothing", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("chunk", [None, 7])
def test_clip_label_smoothing_matches_cross_entropy(dtype, smoothing, chunk):
    a, b = views(19, 12, seed=3, dtype=dtype)
    s = scalar(20.0, dtype)
    ours = clip_loss(a, b, s, label_smoothing=smoothing, chunk_size=chunk)
    ref = naive_clip(a, b, s, smoothing)
    for got, want in zip(value_and_grads(ours, (a, b, s)), value_and_grads(ref, (a, b, s))):
        torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed,n,d", [(0, 8, 16), (1, 31, 8), (2, 32, 64)])
@pytest.mark.parametrize("chunk", [None, 6])
def test_siglip_matches_open_clip(dtype, seed, n, d, chunk):
    a, b = views(n, d, seed=seed, dtype=dtype)
    s, t = scalar(10.0 + seed, dtype), scalar(-10.0 + seed, dtype)
    ours = SigLipLoss(chunk_size=chunk)({"image": a, "text": b}, logit_scale=s, logit_bias=t)
    ref = OpenSigLipLoss()(a, b, s, t)
    for got, want in zip(value_and_grads(ours, (a, b, s, t)), value_and_grads(ref, (a, b, s, t))):
        torch.testing.assert_close(got, want, **TOL)


def test_siglip_large_logits_match_open_clip():
    """Logits past softplus's linear cut-off (|L| > 20) stay exact in both directions."""
    a, b = views(16, 8, seed=4, dtype=torch.float64)
    s, t = scalar(60.0, torch.float64), scalar(-5.0, torch.float64)
    ours, ref = siglip_loss(a, b, s, t), OpenSigLipLoss()(a, b, s, t)
    for got, want in zip(value_and_grads(ours, (a, b, s, t)), value_and_grads(ref, (a, b, s, t))):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_clip_stays_exact_when_rows_underflow_one_shared_shift():
    """A row ~200 below the largest logit underflows exp(L − max) in float32: the stable path takes over."""
    a, b = views(8, 4, seed=5)
    a = a.detach().clone()
    a[3] = -b[0].detach()  # row 3 is anti-aligned: cos ≈ −1 with b_0, far below the max
    b = b.detach().clone()
    b[0] = a[0]
    a.requires_grad_(), b.requires_grad_()
    s = scalar(100.0)
    ours = clip_loss(a, b, s)
    ref = OpenClipLoss()(a.double(), b.double(), s.double())
    assert torch.isfinite(ours)
    torch.testing.assert_close(ours.double(), ref, **TOL)
    got = torch.autograd.grad(ours, (a, b, s))
    want = torch.autograd.grad(ref, (a, b, s))
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w.double(), atol=1e-4, rtol=1e-5)


# ------------------------------------------------------------------------------ chunked == dense

@pytest.mark.parametrize("chunk", [1, 4, 10, 24, 100])
def test_chunked_equals_dense(chunk):
    a, b = views(24, 16, seed=6)
    s, t = scalar(14.0), scalar(-8.0)
    dense = value_and_grads(clip_loss(a, b, s, label_smoothing=0.2), (a, b, s))
    chunked = value_and_grads(clip_loss(a, b, s, label_smoothing=0.2, chunk_size=chunk), (a, b, s))
    for got, want in zip(chunked, dense):
        torch.testing.assert_close(got, want, **TOL)
    dense = value_and_grads(siglip_loss(a, b, s, t), (a, b, s, t))
    chunked = value_and_grads(siglip_loss(a, b, s, t, chunk_size=chunk), (a, b, s, t))
    for got, want in zip(chunked, dense):
        torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("chunk", [None, 3])
def test_second_backward_with_retain_graph_gives_the_same_gradients(chunk):
    """The dense backward reuses its buffer in place; a second backward must recompute, not reuse it."""
    a, b = views(10, 8, seed=7)
    s, t = scalar(12.0), scalar(-6.0)
    for loss, inputs in ((clip_loss(a, b, s, chunk_size=chunk), (a, b, s)),
                         (siglip_loss(a, b, s, t, chunk_size=chunk), (a, b, s, t))):
        first = torch.autograd.grad(loss, inputs, retain_graph=True)
        second = torch.autograd.grad(loss, inputs)
        for g1, g2 in zip(first, second):
            torch.testing.assert_close(g1, g2, **TOL)


# ------------------------------------------------------------------------------ gradcheck

@pytest.mark.parametrize("smoothing,chunk", [(0.0, None), (0.3, None), (0.0, 2), (0.3, 3)])
def test_gradcheck_clip_function(smoothing, chunk):
    a, b = views(6, 4, seed=8, dtype=torch.float64)
    s = scalar(3.0, torch.float64)
    assert torch.autograd.gradcheck(lambda a, b, s: _ClipFunction.apply(a, b, s, smoothing, chunk), (a, b, s))


@pytest.mark.parametrize("chunk", [None, 4])
def test_gradcheck_siglip_function(chunk):
    a, b = views(6, 4, seed=9, dtype=torch.float64)
    s, t = scalar(3.0, torch.float64), scalar(-2.0, torch.float64)
    assert torch.autograd.gradcheck(lambda a, b, s, t: _SigLipFunction.apply(a, b, s, t, 0, chunk, True, False), (a, b, s, t))


def test_siglip_under_no_grad_computes_the_same_value_without_gradients():
    a, b = views(12, 8, seed=12)
    s, t = scalar(9.0), scalar(-4.0)
    with torch.no_grad():
        cheap = siglip_loss(a, b, s, t, chunk_size=5)
    torch.testing.assert_close(cheap, siglip_loss(a, b, s, t).detach())


# ------------------------------------------------------------------------------ low precision, second order
# issue 12 §6: each case against open_clip in float32/float64 on the same (rounded) inputs


def rounded_unit(n, d, dtype, seed, noise=0.5):
    """Two correlated unit views rounded to ``dtype`` (the low-precision inputs) as leaves."""
    a, b = views(n, d, seed=seed, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    b = F.normalize(a.detach() + noise * torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    return a.detach().to(dtype).requires_grad_(), b.to(dtype).requires_grad_()


@pytest.mark.parametrize("chunk", [None, 1])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_one_row_at_scale_100_is_exactly_zero_in_half_precision(dtype, chunk):
    """One row: the loss is log-sum-exp of one logit minus that logit, exactly 0 (it was −0.03 in bf16)."""
    g = torch.Generator().manual_seed(0)
    a, b = (F.normalize(torch.randn(1, 512, generator=g), dim=1).to(dtype) for _ in range(2))
    s = torch.tensor(100.0, dtype=dtype)
    assert OpenClipLoss()(a.double(), b.double(), s.double()).item() == 0.0
    assert clip_loss(a, b, s, chunk_size=chunk).item() == 0.0


@pytest.mark.parametrize("chunk", [None, 4])
def test_clip_value_does_not_cancel_at_huge_scales(chunk):
    """float32, s = 1e6, every positive dominant: ~0 as open_clip (it was −0.0625, one ulp of 1e6)."""
    a, b = rounded_unit(16, 8, torch.float32, seed=6, noise=0.05)
    s = torch.tensor(1e6)
    want = OpenClipLoss()(a.double(), b.double(), s.double()).item()
    assert want < 1e-30 and OpenClipLoss()(a, b, s).item() == 0.0
    assert abs(clip_loss(a, b, s, chunk_size=chunk).item() - want) < 1e-7


@pytest.mark.parametrize("chunk", [None, 1, 5])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_clip_and_siglip_match_open_clip_in_float64(dtype, chunk):
    """B = 513, s = 100: the per-block sums are float32 (chunk 5 in bf16 gave 1608 for 1661)."""
    a, b = rounded_unit(513, 32, dtype, seed=3)
    s, t = torch.tensor(100.0, dtype=dtype), torch.tensor(-10.0, dtype=dtype)
    for ours, ref in ((siglip_loss(a, b, s, t, chunk_size=chunk), OpenSigLipLoss()(a.double(), b.double(),
                                                                                   s.double(), t.double())),
                      (clip_loss(a, b, s, chunk_size=chunk), OpenClipLoss()(a.double(), b.double(), s.double()))):
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours.double(), ref, rtol=1e-6, atol=1e-6)


def test_fp16_siglip_of_large_logits_stays_finite():
    """zeros(256, 4), s = 1, t = 10: 65,536 softplus(10) overflow fp16 (open_clip 3.3.0: inf)."""
    z = torch.zeros(256, 4, dtype=torch.float16)
    s, t = torch.tensor(1.0, dtype=torch.float16), torch.tensor(10.0, dtype=torch.float16)
    want = OpenSigLipLoss()(z.double(), z.double(), s.double(), t.double())
    for chunk in (None, 7):
        torch.testing.assert_close(siglip_loss(z, z, s, t, chunk_size=chunk).double(), want, rtol=1e-6, atol=0)


def test_python_float_scales_keep_float64():
    """A python-float scale was rounded to float32 first (an error of 3e-9 in float64)."""
    a, b = views(16, 8, seed=4, dtype=torch.float64)
    s64, t64 = torch.tensor(14.3, dtype=torch.float64), torch.tensor(-3.7, dtype=torch.float64)
    torch.testing.assert_close(clip_loss(a, b, 14.3), OpenClipLoss()(a, b, s64), rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(siglip_loss(a, b, 14.3, -3.7), OpenSigLipLoss()(a, b, s64, t64), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("chunk", [None, 3])
@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_gradient_penalty_matches_open_clip(name, chunk):
    """Second order through the hand-written backward passes (it was a silent zero)."""
    a, b = views(12, 8, seed=5, dtype=torch.float64)
    s, t = scalar(10.0, torch.float64), scalar(-5.0, torch.float64)
    ours = ClipLoss(chunk_size=chunk) if name == "clip" else SigLipLoss(chunk_size=chunk)
    ref = OpenClipLoss() if name == "clip" else OpenSigLipLoss()
    results = []
    for fn in (lambda: ours({"x": a, "y": b}, logit_scale=s, logit_bias=t),
               lambda: ref(a, b, s) if name == "clip" else ref(a, b, s, t)):
        grad_a, = torch.autograd.grad(fn(), a, create_graph=True)
        penalty = grad_a.pow(2).sum()
        results.append([penalty.detach(), *torch.autograd.grad(penalty, (a, b, s))])
    assert results[0][0] > 0 and results[0][2].abs().sum() > 0
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chunk", [None, 2])
def test_gradgradcheck_clip_and_siglip_functions(chunk):
    a, b = views(5, 3, seed=8, dtype=torch.float64)
    s, t = scalar(3.0, torch.float64), scalar(-2.0, torch.float64)
    assert torch.autograd.gradgradcheck(lambda a, b, s: _ClipFunction.apply(a, b, s, 0.2, chunk), (a, b, s))
    assert torch.autograd.gradgradcheck(lambda a, b, s, t: _SigLipFunction.apply(a, b, s, t, 0, chunk, True, False),
                                        (a, b, s, t))


def test_local_paths_second_order_siglip_works_clip_says_why():
    """One process: the local SigLIP gives the same second order; the local CLIP raises, never a zero."""
    from zoo.objectives._autograd import SecondOrderError
    from zoo.objectives._per_rank import clip_local, siglip_local

    a, b = views(6, 4, seed=9, dtype=torch.float64)
    emb = {"x": a, "y": b}
    penalties = []
    for loss in (siglip_local(emb, emb, 0, 7.0, -3.0, chunk_size=4), siglip_loss(a, b, 7.0, -3.0)):
        grad_a, = torch.autograd.grad(loss, a, create_graph=True)
        penalties.append(torch.autograd.grad(grad_a.pow(2).sum(), b))
    torch.testing.assert_close(*penalties, rtol=1e-10, atol=1e-12)
    with pytest.raises(SecondOrderError, match="create_graph"):
        torch.autograd.grad(clip_local(emb, emb, 0, 7.0), a, create_graph=True)


# ------------------------------------------------------------------------------ contract

@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_registered_and_built_through_the_registry(name):
    assert name in zoo.list_objectives()
    loss_fn = zoo.create_objective(name, chunk_size=4)
    a, b = views(9, 8, seed=10)
    loss = loss_fn({"x": a, "y": b}, logit_scale=torch.tensor(5.0), logit_bias=torch.tensor(-3.0))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert a.grad is not None and b.grad is not None


@pytest.mark.parametrize("loss_fn", [ClipLoss(), SigLipLoss()], ids=["clip", "siglip"])
def test_float_scales_and_mask(loss_fn):
    a, b = views(12, 8, seed=11)
    keep = torch.tensor([True, False] * 6)
    full = loss_fn({"x": a, "y": b}, logit_scale=7.0, logit_bias=-2.0, mask={"y": keep})
    subset = loss_fn({"x": a[keep], "y": b[keep]}, logit_scale=7.0, logit_bias=-2.0)
    torch.testing.assert_close(full, subset)
    none = loss_fn({"x": a, "y": b}, logit_scale=7.0, logit_bias=-2.0, mask={"x": torch.zeros(12, dtype=torch.bool)})
    assert none.item() == 0.0


@pytest.mark.parametrize("loss_fn", [ClipLoss(), SigLipLoss()], ids=["clip", "siglip"])
@pytest.mark.parametrize("shapes", [
    [(4, 8)],  # one view
    [(4, 8), (4, 8), (4, 8)],  # three views
    [(4, 8), (5, 8)],  # mismatched batch
    [(4, 8), (4, 6)],  # mismatched dim
    [(4, 8, 1), (4, 8, 1)],  # not 2-D
    [(8,), (8,)],  # not 2-D
])
def test_bad_shapes_raise_shape_error(loss_fn, shapes):
    embeddings = {f"v{i}": torch.randn(*shape) for i, shape in enumerate(shapes)}
    with pytest.raises(ShapeError, match="expected|needs exactly 2"):
        loss_fn(embeddings, logit_scale=10.0, logit_bias=-10.0)


def test_bad_mask_shape_raises_shape_error():
    a, b = views(4, 8)
    with pytest.raises(ShapeError, match="expected shape"):
        ClipLoss()({"x": a, "y": b}, logit_scale=1.0, mask={"x": torch.ones(5, dtype=torch.bool)})


@pytest.mark.parametrize("make", [
    lambda: ClipLoss(label_smoothing=-0.1),
    lambda: ClipLoss(label_smoothing=1.5),
    lambda: ClipLoss(chunk_size=0),
    lambda: ClipLoss(chunk_size=-8),
    lambda: ClipLoss(chunk_size=2.5),
    lambda: SigLipLoss(chunk_size=0),
])
def test_impossible_settings_raise_value_error(make):
    with pytest.raises(ValueError, match="must be"):
        make()


def test_siglip_without_bias_says_what_to_pass():
    a, b = views(4, 8)
    with pytest.raises(ValueError, match="logit_bias"):
        SigLipLoss()({"x": a, "y": b}, logit_scale=10.0)
    with pytest.raises(ValueError, match="logit_bias"):
        siglip_loss(a, b, 10.0, None)


# ------------------------------------------------------------------------------ memory

_PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys, torch
    from zoo.objectives.clip import clip_loss
    torch.set_num_threads(1)
    n, chunk = int(sys.argv[1]), (int(sys.argv[2]) or None)
    a = torch.nn.functional.normalize(torch.randn(n, 32), dim=1).requires_grad_()
    b = torch.nn.functional.normalize(torch.randn(n, 32), dim=1).requires_grad_()
    clip_loss(a[:64], b[:64], 10.0, chunk_size=16).backward()  # warm up kernels and thread pools
    a.grad = b.grad = None
    def rss_kib(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field))
    try:  # reset the high-water mark (Linux >= 4.0) so only the loss is measured
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        field = "VmHWM:"
    except OSError:
        field = None
    base = rss_kib("VmRSS:")
    clip_loss(a, b, torch.tensor(10.0), chunk_size=chunk).backward()
    peak = rss_kib(field) if field else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mib": (peak - base) / 1024}))
""")


def peak_mib(n: int, chunk: int | None) -> float:
    """Peak resident memory (MiB) of one forward+backward, measured in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(n), str(chunk or 0)],
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux) for peak memory")
def test_chunked_memory_grows_linearly_not_quadratically():
    small, large = peak_mib(2048, 256), peak_mib(8192, 256)
    dense_large = peak_mib(8192, None)
    one_logits_matrix = 8192 ** 2 * 4 / 2 ** 20  # 256 MiB
    assert large < one_logits_matrix / 4, (small, large)
    assert large < 8 * max(small, 1.0), (small, large)  # 4x the rows: linear ~4x, quadratic 16x
    assert dense_large > one_logits_matrix, dense_large
