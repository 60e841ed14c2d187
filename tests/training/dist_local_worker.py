"""Run under torchrun by test_distributed_local.py: the local-loss path of clip and siglip.

Every rank holds ``b = N / world`` rows of a fixed global batch and evaluates
:func:`zoo.training.distributed.local_loss` on them; the gradients are combined as DDP would (rows
concatenated, shared scalars averaged) and rank 0 writes them to the output JSON with the
per-rank peak memory of the loss computation (local path vs the gather-everything one).
"""
from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import zoo
from zoo.training.distributed import gather_with_grad, init_distributed, local_loss, shutdown

N, D = 16, 8  # the global batch of the parity cases (divisible by 2 and 4 ranks)
CASES = {  # name: (objective, options, with a mask)
    "clip": ("clip", {}, False),
    "clip-smoothed-chunked": ("clip", {"label_smoothing": 0.1, "chunk_size": 3}, False),
    "clip-masked": ("clip", {"chunk_size": 5}, True),
    "siglip": ("siglip", {}, False),
    "siglip-chunked-masked": ("siglip", {"chunk_size": 3}, True),
}
MEM_ROWS, MEM_DIM, MEM_BLOCK = 64, 4, 64  # per-rank rows, embedding size, columns per block


def case_inputs(name: str):
    """The global batch of a case: two views ``(N, D)`` (float64), scale, bias, mask ``{view: (N,)}``."""
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    views = [torch.nn.functional.normalize(torch.randn(N, D, generator=g, dtype=torch.float64), dim=-1)
             for _ in range(2)]
    scale, bias = torch.tensor(10.0, dtype=torch.float64), torch.tensor(-5.0, dtype=torch.float64)
    mask = None
    if CASES[name][2]:  # a few absent rows, on both ranks' shares
        mask = {"v0": torch.rand(N, generator=g) > 0.2, "v1": torch.rand(N, generator=g) > 0.2}
    return views, scale, bias, mask


class PeakMemory(TorchDispatchMode):
    """Peak bytes of the tensors allocated by the aten ops run inside (forward and backward).

    An op's output whose storage is none of its inputs' is a new allocation; it is counted until
    its storage is freed (a weak reference to the storage expires). Bytes that existed before the
    mode was entered (the inputs) are not counted. Deterministic, unlike the process RSS.
    """

    def __init__(self):
        super().__init__()
        self.live: list[tuple[StorageWeakRef, int]] = []
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        out = func(*args, **kwargs)
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                storage = t.untyped_storage()
                inputs.add(storage.data_ptr())
                self.live.append((StorageWeakRef(storage), storage.nbytes()))
                self.current += storage.nbytes()
        self.peak = max(self.peak, self.current)
        alive = [(ref, n) for ref, n in self.live if not ref.expired()]
        self.current = sum(n for _, n in alive)
        self.live = alive
        return out


def parity(info) -> dict:
    """Loss and DDP-combined gradients of every case through the local path."""
    results = {}
    for name, (objective, kw, _) in CASES.items():
        views, scale, bias, mask = case_inputs(name)
        b = N // info.world
        rows = slice(info.rank * b, (info.rank + 1) * b)
        local = [v[rows].clone().requires_grad_(True) for v in views]
        scale, bias = scale.clone().requires_grad_(True), bias.clone().requires_grad_(True)
        local_mask = {k: m[rows] for k, m in mask.items()} if mask else None
        loss = local_loss(zoo.create_objective(objective, **kw), {"v0": local[0], "v1": local[1]}, None,
                          local_mask, info, logit_scale=scale, logit_bias=bias)
        loss.backward()
        # as DDP: the rows' gradients are world × the single-process ones, shared scalars are averaged
        results[name] = {"loss": loss.item(),
                         "grads": [torch.cat(_gather(x.grad / info.world)).tolist() for x in local],
                         "scale_grad": _mean(scale.grad).item(),
                         "bias_grad": _mean(bias.grad).item() if bias.grad is not None else None}
    return results


def memory(info) -> dict:
    """Per-rank peak bytes of forward + backward of the loss, local path vs gather-everything."""
    out = {}
    g = torch.Generator().manual_seed(info.rank)
    for objective in ("clip", "siglip"):
        for path in ("local", "global"):
            local = {f"v{i}": torch.nn.functional.normalize(torch.randn(MEM_ROWS, MEM_DIM, generator=g,
                                                                        dtype=torch.float64), dim=-1)
                     .requires_grad_(True) for i in range(2)}
            gathered = {k: gather_with_grad(v) for k, v in local.items()}
            scale, bias = torch.tensor(10.0, dtype=torch.float64), torch.tensor(-5.0, dtype=torch.float64)
            loss_fn = zoo.create_objective(objective, chunk_size=MEM_BLOCK if path == "local" else None)
            with PeakMemory() as meter:
                if path == "local":
                    loss = loss_fn.forward_local(local, gathered, info.rank * MEM_ROWS, logit_scale=scale,
                                                 logit_bias=bias)
                else:
                    loss = loss_fn(gathered, logit_scale=scale, logit_bias=bias)
                loss.backward()
            out[f"{objective}/{path}"] = _max(meter.peak)
    return out


def _gather(x):
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return out


def _mean(x):
    x = x.clone()
    dist.all_reduce(x)
    return x / dist.get_world_size()


def _max(n: int) -> int:
    t = torch.tensor(float(n))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def main(out_path: str) -> None:
    info = init_distributed("cpu")
    results = {"world": info.world, "parity": parity(info), "peak_bytes": memory(info)}
    if info.main:
        with open(out_path, "w") as f:
            json.dump(results, f)
    shutdown(info)


if __name__ == "__main__":
    main(sys.argv[1])
