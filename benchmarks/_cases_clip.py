"""Benchmark cases for ``clip`` and ``siglip`` (protocol: see ``objectives.py``).

* CLIP and SigLIP at N=4096, D=512 against open_clip's ``ClipLoss`` / ``SigLipLoss`` (target from
  the issue: ≥ 1.6x faster, same loss).
* Chunked CLIP at N=65,536, D=512 (target: peak ≤ 4 GB). No reference there: a dense
  implementation needs one 65,536² float32 logits matrix (16 GiB) before its backward. In quick
  mode (N=8,192) the dense path of ours is the reference, to show the memory it saves.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from zoo.objectives.clip import clip_loss
from zoo.objectives.siglip import siglip_loss


def views(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two aligned, L2-normalised ``(n, d)`` leaf views (row i of each is a noisy copy of one vector)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d, generator=g)
    a = F.normalize(base + torch.randn(n, d, generator=g), dim=1)
    b = F.normalize(base.add_(torch.randn(n, d, generator=g)), dim=1)
    return a.requires_grad_(), b.requires_grad_()


def step(loss_of):
    """A fn for the runner: one forward+backward of ``loss_of()``, returning the loss."""
    def run():
        loss = loss_of()
        loss.backward()
        return loss.detach()
    return run


@functools.cache
def open_clip_loss(name: str):
    """open_clip's loss ``name``, imported on first use (the warm-up run): importing open_clip takes
    ~4 s, which every memory subprocess of our own functions would otherwise pay."""
    import open_clip.loss
    return getattr(open_clip.loss, name)()


def clip_cases(n: int, d: int, target: float | None) -> list[dict]:
    a, b = views(n, d)
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)  # CLIP's initial temperature
    return [{"name": f"clip N={n} D={d}", "ref_name": "open_clip.loss.ClipLoss", "min_speedup": target,
             "ours": step(lambda: clip_loss(a, b, log_scale.exp())),
             "ref": step(lambda: open_clip_loss("ClipLoss")(a, b, log_scale.exp()))}]


def siglip_cases(n: int, d: int, target: float | None) -> list[dict]:
    a, b = views(n, d, seed=1)
    log_scale = torch.tensor(math.log(10.0), requires_grad=True)  # SigLIP's initialisation
    bias = torch.tensor(-10.0, requires_grad=True)
    return [{"name": f"siglip N={n} D={d}", "ref_name": "open_clip.loss.SigLipLoss", "min_speedup": target,
             "ours": step(lambda: siglip_loss(a, b, log_scale.exp(), bias)),
             "ref": step(lambda: open_clip_loss("SigLipLoss")(a, b, log_scale.exp(), bias))}]


def chunked_cases(n: int, d: int, chunk: int, quick: bool) -> list[dict]:
    a, b = views(n, d, seed=2)
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    case = {"name": f"clip chunked N={n} D={d} chunk={chunk}", "budget_mb": 4096, "repeats": 1,
            "ours": step(lambda: clip_loss(a, b, log_scale.exp(), chunk_size=chunk))}
    if quick:
        case.update(ref=step(lambda: clip_loss(a, b, log_scale.exp())), ref_name="ours, dense (chunk_size=None)")
    else:
        case.update(ref=None, ref_name="none: dense needs a 16 GiB logits matrix at this N",
                    note="one cold run (~4 GEMMs of N×N×D); peak includes the gradients' allocation")
    return [case]


def cases(quick: bool) -> list[dict]:
    n, big = (1024, 8192) if quick else (4096, 65536)
    target = None if quick else 1.6  # the target is for N=4096
    return clip_cases(n, 512, target) + siglip_cases(n, 512, target) + chunked_cases(big, 512, 1024, quick)
