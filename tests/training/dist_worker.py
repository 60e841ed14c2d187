"""Run under torchrun by test_distributed.py: objectives on all-gathered embeddings, 2 ranks."""
from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist

import zoo
from zoo.training.distributed import gather_with_grad, init_distributed, shutdown

CASES = {"clip": (2, {}), "siglip": (2, {}), "symile": (3, {"negative_sampling": "n_squared"})}


def main(out_path: str) -> None:
    info = init_distributed("cpu")
    results = {}
    for name, (views, kw) in CASES.items():
        g = torch.Generator().manual_seed(0)
        full = [torch.nn.functional.normalize(torch.randn(16, 8, generator=g, dtype=torch.float64), dim=-1)
                for _ in range(views)]
        b = 16 // info.world
        local = [x[info.rank * b:(info.rank + 1) * b].clone().requires_grad_(True) for x in full]
        scale = torch.tensor(10.0, dtype=torch.float64, requires_grad=True)
        bias = torch.tensor(-5.0, dtype=torch.float64, requires_grad=True)
        emb = {f"v{i}": gather_with_grad(x) for i, x in enumerate(local)}
        loss = zoo.create_objective(name, **kw)(emb, logit_scale=scale, logit_bias=bias)
        loss.backward()
        # DDP would average parameter gradients over ranks; the embedding rows' gradients arrive
        # as world × the single-process ones (every rank computes the same global loss).
        grads = [torch.cat([t for t in _gather(x.grad / info.world)]) for x in local]
        scale_grad = _mean(scale.grad)
        results[name] = {"loss": loss.item(), "grads": [gr.tolist() for gr in grads], "scale_grad": scale_grad.item(),
                         "bias_grad": _mean(bias.grad).item() if bias.grad is not None else None}
    if info.main:
        with open(out_path, "w") as f:
            json.dump(results, f)
    shutdown(info)


def _gather(x):
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x)
    return out


def _mean(x):
    x = x.clone()
    dist.all_reduce(x)
    return x / dist.get_world_size()


if __name__ == "__main__":
    main(sys.argv[1])
