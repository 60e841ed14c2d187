"""Many processes and machines through PyTorch's own engine: torchrun + DDP (+ FSDP).

``zoo train`` runs unchanged under ``torchrun --nproc-per-node N`` (multi-node through
torchrun's rendezvous). Each rank encodes its share of the global batch; the embeddings are
all-gathered *with gradients* (``torch.distributed.nn.functional.all_gather``, whose backward
sums the incoming gradients), every rank evaluates the objective on the global batch, and DDP
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
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def gather_with_grad(x: Tensor) -> Tensor:
    """``(b, …)`` on each rank → ``(world·b, …)`` in rank order, differentiable."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather
    return torch.cat(all_gather(x.contiguous()), dim=0)


def gather_plain(x: Tensor) -> Tensor:
    """All-gather without gradients (labels, masks)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


def gather_all(embeddings: Mapping[str, Tensor], labels: Mapping[str, Tensor] | None,
               mask: Mapping[str, Tensor] | None):
    """The global batch: embeddings with gradients, labels and masks without."""
    emb = {k: gather_with_grad(v) for k, v in embeddings.items()}
    lab = {k: gather_plain(v) for k, v in labels.items()} if labels else labels
    msk = {k: gather_plain(v) for k, v in mask.items()} if mask else mask
    return emb, lab, msk


def all_reduce_logsumexp(x: Tensor) -> Tensor:
    """Elementwise ``log Σ_ranks exp(x)`` (stable: a max all-reduce, then a sum one; O(len(x)) memory)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    top = x.detach().clone()
    dist.all_reduce(top, op=dist.ReduceOp.MAX)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # a column of -inf stays -inf
    total = (x.detach() - top).exp()
    dist.all_reduce(total)
    return total.log() + top


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


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device, fsdp: bool = False) -> torch.nn.Module:
    """DDP (or FSDP for towers that do not fit on one device) around the model, when distributed."""
    if not info.enabled:
        return model
    if fsdp:
        from torch.distributed.fsdp import FullyShardedDataParallel
        return FullyShardedDataParallel(model, device_id=device if device.type == "cuda" else None,
                                        use_orig_params=True)
    ids = [device.index if device.index is not None else info.local_rank] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
