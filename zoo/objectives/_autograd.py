"""Autograd helpers of the objectives' hand-written Functions: compute dtype, no autocast, graph of a gradient.

Private (no registration).

* Precision: the kernels run in at least float32 (:func:`compute_dtype`) and outside autocast
  (:func:`no_autocast`), so bf16/fp16 embeddings give the loss of their rounded values to float32
  accuracy: no bf16 accumulator, no fp16 overflow, and a backward that recomputes a block gets the
  forward's bits.
* Second order: the fast backward passes are first-order formulas with in-place buffers. When a
  caller asks for the graph of the gradient (``torch.autograd.grad(..., create_graph=True)``, e.g.
  a gradient penalty), autograd runs the backward with gradients enabled; the Functions then call
  :func:`graph_of_gradient`, which recomputes the loss with the plain, differentiable torch
  formulation of the objective (its reference: O(N²) memory, no blocking) and returns its
  gradients *with* their graph, so second-order gradients are exact, never silently zero.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from zoo.errors import ZooError


class SecondOrderError(ZooError, RuntimeError):
    """A second-order gradient (``create_graph=True``) through a path that cannot provide it."""


def compute_dtype(*xs: Tensor) -> torch.dtype:
    """The promoted floating dtype of ``xs``, at least float32 (16-bit floats are computed in float32)."""
    dtype = xs[0].dtype
    for x in xs[1:]:
        dtype = torch.promote_types(dtype, x.dtype)
    return torch.promote_types(dtype, torch.float32)


def no_autocast(x: Tensor):
    """A context without autocast on ``x``'s device: the kernels keep the dtype they were given."""
    return torch.autocast(x.device.type, enabled=False)


def graph_of_gradient(reference: Callable[..., Tensor], inputs: Sequence, needs: Sequence[bool],
                      grad: Tensor) -> tuple:
    """``grad · ∂reference(*inputs)/∂inputs`` with a graph, ``None`` where ``needs`` is False.

    ``inputs`` are the Function's forward arguments as saved (tensors keep their history);
    each tensor that needs a gradient enters ``reference`` through a fresh view, so that two
    arguments that are one tensor (``clip_loss(x, x)``) still get their own gradient.
    """
    wanted = [i for i, (x, need) in enumerate(zip(inputs, needs)) if need and isinstance(x, Tensor)]
    with torch.enable_grad(), no_autocast(grad):
        args = list(inputs)
        for i in wanted:
            args[i] = args[i].view_as(args[i])
        value = reference(*args)
        grads = torch.autograd.grad(value, [args[i] for i in wanted], grad, create_graph=True,
                                    allow_unused=True)
    out: list = [None] * len(inputs)
    for i, g in zip(wanted, grads):
        out[i] = torch.zeros_like(args[i]) if g is None else g
    return tuple(out)
