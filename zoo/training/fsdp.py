"""FSDP (PyTorch's ``fully_shard``, "FSDP2") for towers that do not fit on one device.

``run.fsdp = true`` under torchrun shards every tower's parameters, gradients and optimizer
state across the ranks (each rank holds ``1/world`` of them between forward passes); the root
scalars (the temperature, the bias) stay whole on every rank. Tower parameters become
``DTensor`` shards; this module turns them into ordinary full tensors wherever the rest of the zoo
expects a plain model:

- checkpoints: :func:`full_model_state` / :func:`full_optimizer_state` gather full, FQN-keyed
  states onto rank 0, so a checkpoint written under FSDP is the same format as a DDP or
  single-process one and resumes at any world size (:func:`load_full_states` re-shards it);
- evaluation and the final ``save_pretrained``: :class:`PlainCopy` keeps an unsharded CPU copy
  of the model on rank 0 and fills it with the gathered weights when asked.

Every function here is collective: all ranks must call it, in the same order.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

_FULL_ON_RANK0 = StateDictOptions(full_state_dict=True, cpu_offload=True)  # rank 0 gets it all, others {}
_FULL_FROM_EACH = StateDictOptions(full_state_dict=True)  # every rank passes the full state; each keeps its shard


def shard(model: torch.nn.Module, device: torch.device, world: int) -> None:
    """``fully_shard`` each tower in place (on CPU over gloo, on CUDA over NCCL).

    The root parameters (the temperature, the bias) are scalars, which ``fully_shard`` refuses;
    they stay whole on every rank and :func:`average_replicated_grads` averages their gradients
    as DDP would."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    with torch.no_grad():  # every rank starts from rank 0's weights (ranks are seeded apart), as DDP does
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)
    mesh = init_device_mesh(device.type, (world,))
    for tower in model.towers.values():
        fully_shard(tower, mesh=mesh)


def average_replicated_grads(model: torch.nn.Module) -> None:
    """Mean over ranks of the gradients of the parameters FSDP does not manage (the root scalars)."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    for p in model.parameters():
        if p.grad is not None and not isinstance(p, DTensor):
            dist.all_reduce(p.grad)  # a sum (gloo has no average), then / world
            p.grad.div_(dist.get_world_size())


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole, unsharded ``state_dict`` of ``model`` on rank 0 (CPU tensors); ``{}`` elsewhere."""
    return get_model_state_dict(model, options=_FULL_ON_RANK0)


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state keyed by parameter names (not ids), unsharded, on rank 0."""
    return get_optimizer_state_dict(model, optimizer, options=_FULL_ON_RANK0)


def load_full_states(model: torch.nn.Module, optimizer: torch.optim.Optimizer, model_state: dict[str, torch.Tensor],
                     optimizer_state: dict[str, Any]) -> None:
    """Shard full states (as :func:`full_model_state` / :func:`full_optimizer_state` wrote them)
    into this rank's parameters and optimizer, whatever the world size they were written at."""
    set_model_state_dict(model, model_state, options=_FULL_FROM_EACH)
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=_FULL_FROM_EACH)


class PlainCopy:
    """An unsharded CPU copy of the model on rank 0, refreshed from the shards on request.

    Evaluation, pictures and ``save_pretrained`` run on it (rank 0 alone cannot run a sharded
    forward: every shard lives on another rank). It costs one full copy of the weights in rank 0's
    host memory, not on its device.
    """

    def __init__(self, model: torch.nn.Module, main: bool):
        self.copy = copy.deepcopy(model).cpu() if main else None  # before sharding: plain tensors

    def refresh(self, sharded: torch.nn.Module) -> torch.nn.Module | None:
        """Gather the current weights (collective) → the plain copy on rank 0, ``None`` elsewhere."""
        state = full_model_state(sharded)
        if self.copy is None:
            return None
        self.copy.load_state_dict(state, strict=True)
        return self.copy.eval()
