"""Benchmark cases for ``symile`` (protocol: see ``objectives.py``), M = 3 views, D = 256.

* O(N²) negatives at N=256 against ``symile.Symile("n_squared")`` (target from the issue: ≥ 5x
  faster, same loss). The reference builds the ``N²×D`` candidate products in a Python loop and
  one ``(N, N²)`` logits matrix per anchor; ours shares one blocked ``N×N×N`` logits tensor
  between the three anchors, so a forward+backward needs 3 ``N³·D`` GEMMs instead of 9.
* O(N²) negatives at N=512 against the reference, one cold run each (its logits are 0.5 GiB per
  anchor), to measure the memory ratio where the reference still runs.
* O(N²) negatives at N=1024: ours alone. The reference cannot run on this machine: autograd
  keeps, per anchor, its ``(N, N²)`` logits and their log-softmax (4 GiB each in float32), so
  ≥ 24 GiB for three anchors. Target: ≤ 1/10 of that (2.4 GB).
* O(N) negatives at N=4096 against ``symile.Symile("n")``, both seeded alike (same permutations).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from symile import Symile

from zoo.objectives.symile import SymileLoss

REF_N2_BYTES_PER_N3 = 3 * 2 * 4  # 3 anchors × (logits + log-softmax) × float32, per N³ entries


def views(n: int, d: int, m: int = 3, seed: int = 0) -> list[torch.Tensor]:
    """``m`` aligned, L2-normalised ``(n, d)`` leaf views (noisy copies of one shared vector per row)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d, generator=g)
    return [F.normalize(base + torch.randn(n, d, generator=g), dim=1).requires_grad_() for _ in range(m)]


def step(loss_of, seed: int | None = None):
    """A fn for the runner: one forward+backward of ``loss_of()`` (after seeding), returning the loss."""
    def run():
        if seed is not None:
            torch.manual_seed(seed)  # both "n" implementations draw the same permutations
        loss = loss_of()
        loss.backward()
        return loss.detach()
    return run


def symile_case(n: int, d: int, sampling: str, with_ref: bool, **extra) -> dict:
    xs = views(n, d, seed=n)
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    ours, ref = SymileLoss(sampling), Symile(sampling)
    emb = {name: x for name, x in zip(("image", "text", "audio"), xs)}
    seed = 0 if sampling == "n" else None
    case = {"name": f"symile {sampling} M=3 N={n} D={d}",
            "ours": step(lambda: ours(emb, logit_scale=log_scale.exp()), seed),
            "ref": step(lambda: ref(xs, log_scale.exp()), seed) if with_ref else None,
            "ref_name": f'symile.Symile("{sampling}")' if with_ref else "none", **extra}
    return case


def cases(quick: bool) -> list[dict]:
    if quick:
        return [symile_case(128, 128, "n_squared", True),
                symile_case(256, 128, "n_squared", False, repeats=1),
                symile_case(1024, 128, "n", True)]
    big = 1024
    ref_gb = REF_N2_BYTES_PER_N3 * big ** 3 / 1e9
    return [
        symile_case(256, 256, "n_squared", True, min_speedup=5.0),
        symile_case(512, 256, "n_squared", True, repeats=1,
                    note="one cold run each (the reference needs seconds and GBs here)"),
        {**symile_case(big, 256, "n_squared", False, repeats=1, budget_mb=ref_gb * 1000 / 10),
         "name": f"symile n_squared M=3 N={big} D=256 (symile pkg cannot run: ≥{ref_gb:.0f} GB)",
         "ref_name": f"none: symile.Symile keeps ≥ {ref_gb:.0f} GB of logits here (machine: 23 GB)",
         "note": "one cold run; budget = 1/10 of the reference's lower bound"},
        symile_case(4096, 256, "n", True),
    ]
