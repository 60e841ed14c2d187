"""Benchmark cases for the contrastive family (see benchmarks/objectives.py for the protocol).

Each fn runs one forward+backward on inputs built here and returns the loss. Ours receives
L2-normalised embeddings (normalised inside fn, as the references normalise internally).
"""
from __future__ import annotations

import importlib
import warnings

import torch
import torch.nn.functional as F

import zoo

TAU = 0.1
NO_REF = "none (no package implements it)"


def _inputs(batch: int, dim: int, views: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g, requires_grad=True) for _ in range(views)]


def _ours(name: str, xs, labels=None, **options):
    objective = zoo.create_objective(name, **options)
    scale = torch.tensor(1 / TAU, requires_grad=True)

    def fn():
        emb = {f"v{i}": F.normalize(x, dim=1) for i, x in enumerate(xs)}
        loss = objective(emb, logit_scale=scale, labels=labels)
        loss.backward()
        return loss.detach()
    return fn


def _ref(loss_fn, *args, prepare=None):
    def fn():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss = loss_fn(*(prepare(*args) if prepare else args))
        loss.backward()
        return loss.detach()
    return fn


def _package_loss(path: str, **kw):
    """``"module:Class"`` built with ``kw`` on the first call (the warm-up run): importing lightly or
    pytorch-metric-learning takes 1–3 s that the memory subprocesses of our own functions need not pay."""
    built = []

    def loss(*args):
        if not built:
            module, name = path.split(":")
            built.append(getattr(importlib.import_module(module), name)(**kw))
        return built[0](*args)
    return loss


def _align_uniform_reference(a, b):
    """Wang & Isola's published two-line reference code, α = t = 2, λ = 1."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    align = (a - b).norm(p=2, dim=1).pow(2).mean()
    uniform = [torch.pdist(x, p=2).pow(2).mul(-2).exp().mean().log() for x in (a, b)]
    return align + (uniform[0] + uniform[1]) / 2


def cases(quick: bool) -> list[dict]:
    batch, dim = (128, 64) if quick else (1024, 128)
    xs = _inputs(batch, dim)
    labels = torch.randint(0, max(2, batch // 8), (batch,), generator=torch.Generator().manual_seed(1))
    supcon_labels = {"class": labels}
    levels = [{"name": "sample", "views": ["v0", "v1"], "objective": "supcon"},
              {"name": "class", "views": ["v0", "v1"], "positives": "class", "weight": 0.5}]
    mochi = dict(n_hard=min(256, batch - 1), n_mix=128, n_mix_query=64)
    return [
        {"name": f"dcl B={batch}", "ours": _ours("dcl", xs),
         "ref": _ref(_package_loss("lightly.loss:DCLLoss", temperature=TAU), *xs), "ref_name": "lightly.loss.DCLLoss"},
        {"name": f"dclw B={batch}", "ours": _ours("dcl", xs, weight_sigma=0.5),
         "ref": _ref(_package_loss("lightly.loss:DCLWLoss", temperature=TAU, sigma=0.5), *xs),
         "ref_name": "lightly.loss.DCLWLoss"},
        {"name": f"debiased τ⁺=0 B={batch}", "ours": _ours("debiased", xs, tau_plus=0.0),
         "ref": _ref(_package_loss("lightly.loss:NTXentLoss", temperature=TAU), *xs),
         "ref_name": "lightly.loss.NTXentLoss (same loss at τ⁺=0)"},
        {"name": f"hard_negative B={batch}", "ours": _ours("hard_negative", xs), "ref": None, "ref_name": NO_REF},
        {"name": f"mochi B={batch}", "ours": _ours("mochi", xs, **mochi), "ref": None, "ref_name": NO_REF},
        {"name": f"supcon 2 views B={batch}", "ours": _ours("supcon", xs, supcon_labels),
         "ref": _ref(_package_loss("pytorch_metric_learning.losses:SupConLoss", temperature=TAU), *xs,
                     prepare=lambda a, b: (torch.cat([a, b]), labels.repeat(2))),
         "ref_name": "pytorch_metric_learning SupConLoss"},
        {"name": f"align_uniform B={batch}", "ours": _ours("align_uniform", xs),
         "ref": _ref(_align_uniform_reference, *xs), "ref_name": "Wang & Isola reference code"},
        {"name": f"hierarchical 2 levels B={batch}", "ours": _ours("hierarchical", xs, supcon_labels, levels=levels),
         "ref": None, "ref_name": NO_REF},
    ]
