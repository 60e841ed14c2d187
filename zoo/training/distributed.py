"""Many processes and machines through PyTorch's own engine: torchrun + DDP (+ FSDP).

``zoo train`` runs unchanged under ``torchrun --nproc-per-node N`` (multi-node through
torchrun's rendezvous). Each rank encodes its share of the global batch; the embeddings are
all-gathered *with gradients* (:func:`gather_with_grad`, whose backward sums the incoming
gradients), every rank evaluates the objective on the global batch, and DDP
averages the parameter gradients. Since every rank computes the same global loss, the
all-gather backward hands each rank ``world ×`` the gradient of its own rows, and DDP's mean
over ranks turns that into exactly the single-process gradient on the global batch.

Objectives with a ``forward_local`` method (CLIP, SigLIP) take the local path instead
(:func:`local_loss`): each rank evaluates only its own rows against the gathered columns, so the
pairwise memory per rank stays O(b·block) as the world grows, not O((world·b)²).
"""
from __future__ import annotations

import datetime
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owner: bool = False  # this process group was created by init_distributed (shutdown may end it)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    owner = not dist.is_initialized()
    if owner:
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owner)


# torch 2.14 renamed the tensor collectives (``*_into_tensor`` / ``*_tensor`` → ``*_single``).
_ALL_GATHER = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
_REDUCE_SCATTER = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums the incoming gradients over ranks and hands each
    rank the rows it contributed (reduce-scatter on NCCL; all-reduce + slice on gloo, which has no
    reduce-scatter). Same contract as ``torch.distributed.nn.functional.all_gather`` (deprecated)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # (b, …) → (world·b, …)
        world = dist.get_world_size()
        out = x.new_empty((world * x.shape[0], *x.shape[1:]))
        _ALL_GATHER(out, x.contiguous())
        ctx.rows = x.shape[0]
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # (world·b, …) → (b, …)
        grad = grad.contiguous()
        if dist.get_backend() == "nccl":
            own = grad.new_empty((ctx.rows, *grad.shape[1:]))
            _REDUCE_SCATTER(own, grad)
            return own
        total = grad.clone()
        dist.all_reduce(total)
        start = dist.get_rank() * ctx.rows
        return total[start:start + ctx.rows]


def gather_with_grad(x: Tensor) -> Tensor:
    """``(b, …)`` on each rank → ``(world·b, …)`` in rank order, differentiable."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def gather_plain(x: Tensor) -> Tensor:
    """All-gather without gradients (labels, masks)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


def gather_objects(obj, info: DistInfo) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` for one process."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def gather_all(embeddings: Mapping[str, Tensor], labels: Mapping[str, Tensor] | None,
               mask: Mapping[str, Tensor] | None):
    """The global batch: embeddings with gradients, labels and masks without."""
    emb = {k: gather_with_grad(v) for k, v in embeddings.items()}
    lab = {k: gather_plain(v) for k, v in labels.items()} if labels else labels
    msk = {k: gather_plain(v) for k, v in mask.items()} if mask else mask
    return emb, lab, msk


def local_loss(objective: torch.nn.Module, embeddings: Mapping[str, Tensor], labels: Mapping[str, Tensor] | None,
               mask: Mapping[str, Tensor] | None, info: DistInfo, **kw) -> Tensor:
    """The objective's local path (``forward_local``): this rank's rows against the global batch.

    ``loss_r = objective.forward_local(…)`` is this rank's part (``Σ_r loss_r`` is the global loss)
    and its backward this rank's share of the global gradient. The returned tensor has the value of
    the global loss (all-reduced: logged, checked for NaN on every rank alike) and the gradient of
    ``world · loss_r``: the all-gather's backward already sums the columns' gradients over ranks, so
    each rank's embeddings get ``world × ∂loss/∂z`` and DDP's mean over ranks gives exactly the
    single-process gradient (the temperature's too: the mean of ``world · ∂loss_r/∂s``).
    """
    gathered, labels, mask = gather_all(embeddings, labels, mask)
    offset = info.rank * next(iter(embeddings.values())).shape[0]  # every rank holds b rows
    part = objective.forward_local(embeddings, gathered, offset, labels=labels or None, mask=mask, **kw)
    total = part.detach().clone()
    dist.all_reduce(total)
    scaled = part * info.world
    return scaled + (total - scaled).detach()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group together, and let gloo's worker threads drop the last finished
    collectives before the interpreter finalises.

    A gloo worker thread releases a finished collective's tensors after the caller has already
    returned; releasing a tensor that Python knows needs the GIL, and a thread that asks for the GIL
    while the interpreter finalises aborts the process ("terminate called without an active
    exception", pytorch/pytorch#190489). The barrier keeps every rank in step, the pause gives the
    GIL away so those threads finish, then the group is destroyed.
    """
    if info.enabled and info.owner and dist.is_initialized():
        dist.barrier()
        time.sleep(0.25)
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """DDP around the model, when distributed (FSDP: :func:`zoo.training.fsdp.shard`)."""
    if not info.enabled:
        return model
    ids = [device.index if device.index is not None else info.local_rank] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
