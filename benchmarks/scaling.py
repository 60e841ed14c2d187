"""How cost grows with the batch: time and peak memory at 4 batch sizes, and the fitted exponent.

    python benchmarks/scaling.py            # CPU, 2 threads, fastest of 3 (a few minutes)
    python benchmarks/scaling.py --quick    # tiny sizes, one timed run each (CI: seconds; a smoke test —
                                            # its memory is near the page size and its exponents are noise)

For each case the batch N doubles three times; the exponent ``k`` of ``cost ∝ N^k`` is the
least-squares slope of log(cost) on log(N). A regression in scaling shows as a number:

| case | expected time exponent | expected memory exponent |
|---|---|---|
| ``clip`` dense (N×N logits) | 2 (N²·D GEMMs) | 2 (the logits and their gradient) |
| ``clip`` chunked (chunk fixed) | 2 | 1 (O(N·chunk)) |
| ``siglip`` | 2 | 2 |
| ``symile n_squared`` M = 3 | 3 (N³·D) | 2 (one N×N slab at a time) |
| training step (MLP towers + clip) | 1 (towers dominate) | 1 |
| training step with GradCache (chunk fixed) | 1 | ≪ 1 (one chunk's activations; only the N×D embeddings and the N×N loss grow) |

At the smallest sizes fixed costs flatten the curve, so measured exponents sit below the
asymptotic ones; compare numbers from the same machine and mode. Memory: the peak bytes of the
tensors the run creates that are alive at once (tracked through the dispatcher, see
:class:`PeakTensorBytes`; inputs made beforehand and the model's weights are not counted, their
gradients and the optimizer's state on first use are) — the process's resident set cannot see
memory the allocator reuses.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

CPU = torch.device("cpu")


class PeakTensorBytes(TorchDispatchMode):
    """Peak bytes of the tensor storages created while it is active and alive at the same time (forward,
    backward and optimizer ops all pass through the dispatcher). Storages are tracked by weak reference
    and counted until they are freed; unlike the process's resident set this sees memory the allocator
    reuses, so small sizes read true too."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def _prune(self) -> int:
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            del self.live[key]
        return sum(n for _, n in self.live.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self._prune()
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                st = t.untyped_storage()
                self.live.setdefault(st.data_ptr(), (StorageWeakRef(st), st.nbytes()))
        self.peak = max(self.peak, self._prune())
        return out


def unit(n: int, d: int, m: int = 2, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(n, d, generator=g), dim=1).requires_grad_() for _ in range(m)]


def objective_case(name: str, make):
    """``make(n)`` → a function running one forward + backward at batch ``n``."""
    return {"name": name, "make": make}


def clip_case(d: int, chunk: int | None):
    from zoo.objectives.clip import clip_loss
    scale = torch.tensor(1 / 0.07)

    def make(n):
        a, b = unit(n, d)
        return lambda: clip_loss(a, b, scale, chunk_size=chunk).backward()
    return make


def siglip_case(d: int):
    from zoo.objectives.siglip import siglip_loss
    scale, bias = torch.tensor(10.0), torch.tensor(-10.0)

    def make(n):
        a, b = unit(n, d)
        return lambda: siglip_loss(a, b, scale, bias).backward()
    return make


def symile_case(d: int):
    from zoo.objectives.symile import SymileLoss
    loss, scale = SymileLoss("n_squared"), torch.tensor(1 / 0.07)

    def make(n):
        xs = unit(n, d, m=3)
        emb = dict(zip(("a", "b", "c"), xs))
        return lambda: loss(emb, logit_scale=scale).backward()
    return make


def train_case(dim: int, hidden: int, layers: int, chunk: int | None):
    """One training step of two MLP towers + clip (+ AdamW), optionally with GradCache."""
    import zoo
    from zoo.model import ContrastiveModel, ModelConfig
    from zoo.training.gradcache import grad_cache_backward
    from zoo.training.step import Encoded

    def make(n):
        torch.manual_seed(0)
        tower = {"modality": "vector", "encoder": "mlp", "in_dim": dim, "hidden": hidden, "out_dim": hidden,
                 "layers": layers}
        model = ContrastiveModel(ModelConfig.from_dict({"embed_dim": 128, "towers": {"x": tower, "y": dict(tower)}}))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        objective = zoo.create_objective("clip")
        g = torch.Generator().manual_seed(1)
        views = {v: (v, torch.randn(n, dim, generator=g)) for v in ("x", "y")}

        def encode(vs):
            return Encoded({v: model.embed_batch(t, b) for v, (t, b) in vs.items()}, model.scale(), None)

        def loss_fn(enc):
            return objective(enc.embeddings, logit_scale=enc.logit_scale)

        def step():
            if chunk:
                grad_cache_backward(encode, views, loss_fn, chunk, CPU)
            else:
                loss_fn(encode(views)).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step
    return make


def cases(quick: bool) -> list[dict]:
    obj = [32, 64, 128, 256] if quick else [512, 1024, 2048, 4096]
    sym = [8, 16, 32, 64] if quick else [64, 128, 256, 512]
    train = [32, 64, 128, 256] if quick else [256, 512, 1024, 2048]
    d = 32 if quick else 256
    hidden = 128 if quick else 1024
    return [
        {"name": "clip dense", "sizes": obj, "make": clip_case(d, None), "expect": (2, 2)},
        {"name": f"clip chunked (chunk {obj[0] // 2})", "sizes": obj, "make": clip_case(d, obj[0] // 2),
         "expect": (2, 1)},
        {"name": "siglip", "sizes": obj, "make": siglip_case(d), "expect": (2, 2)},
        {"name": "symile n_squared M=3", "sizes": sym, "make": symile_case(d), "expect": (3, 2)},
        {"name": f"train step (MLP {hidden}×3 + clip)", "sizes": train, "make": train_case(32, hidden, 3, None),
         "expect": (1, 1)},
        {"name": f"train step, GradCache chunk {train[0] // 2}", "sizes": train,
         "make": train_case(32, hidden, 3, train[0] // 2), "expect": (1, 0)},
    ]


def measure(fn, repeats: int) -> tuple[float, float]:
    """(fastest seconds, peak tensor bytes) of ``fn()`` after one warm-up run. The fastest of the
    repeats: on a shared machine stalls only ever add time, so the minimum is the steadiest. The
    memory comes from one more run under :class:`PeakTensorBytes` (not timed: it slows every op)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    with PeakTensorBytes() as tracker:
        fn()
    return min(times), float(max(tracker.peak, 1))


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x): the exponent k of y ∝ x^k."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-12)) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def run(quick: bool, repeats: int, only: str | None = None) -> list[dict]:
    rows = []
    for case in cases(quick):
        if only and only not in case["name"]:
            continue
        pts = [measure(case["make"](n), repeats) for n in case["sizes"]]
        rows.append({"name": case["name"], "sizes": case["sizes"], "seconds": [p[0] for p in pts],
                     "bytes": [p[1] for p in pts], "time_exp": slope(case["sizes"], [p[0] for p in pts]),
                     "mem_exp": slope(case["sizes"], [p[1] for p in pts]), "expect": case["expect"]})
    return rows


def report(rows: list[dict]) -> None:
    print(f"{'case':<36} {'N':>20} {'ms':>32} {'peak MB':>28} {'k time':>7} {'k mem':>6} {'expected':>9}")
    for r in rows:
        sizes = "/".join(str(n) for n in r["sizes"])
        ms = "/".join(f"{s * 1e3:.1f}" for s in r["seconds"])
        mb = "/".join(f"{b / 2**20:.1f}" for b in r["bytes"])
        print(f"{r['name']:<36} {sizes:>20} {ms:>32} {mb:>28} {r['time_exp']:>7.2f} {r['mem_exp']:>6.2f} "
              f"{'%d / %d' % r['expect']:>9}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, one timed run each")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per size (default 3; --quick 1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", help="run the cases whose name contains this")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = run(args.quick, args.repeats or (1 if args.quick else 3), args.only)
    print(f"torch {torch.__version__}; cpu; {args.threads} threads; cost ∝ N^k, k fitted over 4 sizes")
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
