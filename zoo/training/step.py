"""One step's loss and gradients: forward → objective → backward, on one process or many.

    forward_backward = ForwardBackward(model, objective, state=state, dist=dist, device=device, fsdp=False,
                                       precision="fp32", grad_cache_chunk=0, objective_name="clip")
    loss = forward_backward(batch)   # detached; every parameter's .grad holds ∂loss/∂θ
    forward_backward.value           # the same loss as a float (read once, by the NaN check)

The trainer's ``train_step`` calls it, then clips, steps the optimizer and the schedule. Under
torchrun one step goes through these functions, in this order:

1. **encode** — :class:`EncodeViews` is the module DDP wraps (:func:`zoo.training.distributed.wrap`):
   each rank embeds its own rows, and the temperature and bias are read inside its ``forward``, as
   DDP requires of every parameter the loss uses. Under FSDP it is not wrapped: the towers were
   sharded in place by :func:`zoo.training.fsdp.shard`.
2. **loss** — :meth:`ForwardBackward.loss`: an objective with ``forward_local`` (CLIP, SigLIP) takes
   :func:`zoo.training.distributed.local_loss` (this rank's rows against the gathered columns);
   any other gets the global batch from :func:`zoo.training.distributed.gather_all` (embeddings
   all-gathered with gradients) and evaluates it whole.
3. **backward** — ``loss.backward()``, or GradCache's chunks (:func:`zoo.training.gradcache.grad_cache_backward`)
   when ``run.grad_cache_chunk`` is smaller than the batch. DDP averages the parameter gradients over
   the ranks during backward; under FSDP ``fully_shard`` reduce-scatters the towers' gradients and
   the trainer averages the unsharded root scalars with :func:`zoo.training.fsdp.average_replicated_grads`.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from zoo.data.batches import move_to
from zoo.data.collate import Batch
from zoo.errors import ZooError
from zoo.model import ContrastiveModel
from zoo.plugins import registry
from zoo.protocols import ObjectiveTraits
from zoo.training.distributed import DistInfo, gather_all, local_loss, wrap
from zoo.training.gradcache import grad_cache_backward
from zoo.training.state import TrainState


class NonFiniteLossError(ZooError):
    """The loss became NaN or inf; the weights were not updated."""


class Encoded(NamedTuple):
    """What one forward pass gives the objective."""
    embeddings: dict[str, Tensor]   # {view: (b, D)} and {"view/level": (b, D)} for the levels asked for
    logit_scale: Tensor             # () the temperature's multiplier exp(s), clamped
    logit_bias: Tensor | None       # () SigLIP's learnable bias; None when the model has none


class EncodeViews(torch.nn.Module):
    """What DDP wraps: the views' embeddings, with the temperature and bias read inside ``forward``."""

    def __init__(self, model: ContrastiveModel):
        super().__init__()
        self.model = model

    def forward(self, views: Mapping[str, tuple[str, Any]], levels: dict[str, set[str]]) -> Encoded:
        bias = self.model.logit_bias
        # a view, not the parameter itself: DDP finds the parameters a forward used by walking back from
        # its outputs' grad_fn, which a bare parameter lacks (DDP would count the bias unused, then see
        # its gradient arrive: "marked as ready twice")
        return Encoded(self.model(views, levels=levels), self.model.scale(), None if bias is None else bias.view(()))


class ForwardBackward:
    """Loss and gradients of one global batch (the module docstring follows a distributed step).
    ``state`` gives the step number for error messages and receives the temperature the forward used."""

    def __init__(self, model: ContrastiveModel, objective: torch.nn.Module, *, state: TrainState, dist: DistInfo,
                 device: torch.device, fsdp: bool, precision: str, grad_cache_chunk: int, objective_name: str):
        # FSDP: the towers are already sharded in place; DDP (or nothing, for one process) wraps the encoder
        self.encoder = EncodeViews(model) if fsdp else wrap(EncodeViews(model), dist, device)
        self.objective, self.state, self.dist, self.device = objective, state, dist, device
        self.precision, self.chunk, self.objective_name = precision, grad_cache_chunk, objective_name
        # each tower's modality: GradCache asks it to count and slice batches that are not tensors (PyG)
        self.modalities = {key: registry().modality(t.config.modality) for key, t in model.towers.items()}
        # the objective's traits are fixed for the run: read once here, not at every step
        traits = ObjectiveTraits.of(objective)
        self.required_views, self.forward_local = traits.required_views, traits.forward_local
        self._levels: dict[tuple[str, ...], dict[str, set[str]]] = {}  # view names -> the levels asked of each
        self.value = float("nan")  # the last loss, as a float (read by the NaN check)

    def __call__(self, batch: Batch) -> Tensor:
        """Forward, objective and backward for ``batch``: directly, or through GradCache's chunks.
        Raises :class:`NonFiniteLossError` (before any backward) when the loss is NaN or inf."""
        with self._autocast():
            if not self.chunk or self.chunk >= batch.size:
                loss = self._finite(self.loss(self.encode(batch.views), batch))
                loss.backward()
                return loss.detach()
            return grad_cache_backward(self.encode, batch.views,
                                       lambda encoded: self._finite(self.loss(encoded, batch)), self.chunk,
                                       self.device, self.modalities)

    def encode(self, views: Mapping[str, tuple[str, Any]]) -> Encoded:
        """``{view: (tower, batch)}`` → the embeddings, plus ``"view/level"`` ones the objective asks for."""
        names = tuple(views)
        if names not in self._levels:
            wanted = self.required_views
            self._levels[names] = {v: {k.split("/", 1)[1] for k in wanted if k.startswith(v + "/")} for v in names}
        return self.encoder(views, self._levels[names])

    def loss(self, encoded: Encoded, batch: Batch) -> Tensor:
        """The objective on the global batch. Under torchrun: the objective's local path when it has
        one (its own rows against the gathered columns), else on embeddings all-gathered with gradients."""
        self.state.logit_scale = encoded.logit_scale.detach()  # logged; FSDP reads it only inside forward
        labels, mask = move_to(batch.labels, self.device), move_to(batch.mask, self.device)
        kw = {"logit_scale": encoded.logit_scale, "logit_bias": encoded.logit_bias}
        if self.dist.enabled and self.forward_local is not None:
            return local_loss(self.objective, encoded.embeddings, labels, mask, self.dist, **kw)
        emb = encoded.embeddings
        if self.dist.enabled:
            emb, labels, mask = gather_all(emb, labels, mask)
        return self.objective(emb, labels=labels or None, mask=mask, **kw)

    def _finite(self, loss: Tensor) -> Tensor:
        """The NaN check before any backward. Reading the value is its one host sync per step; the value is
        kept (``self.value``) so the trainer does not read it again, after the optimizer step (a second
        sync on a GPU, which would keep the host from preparing the next batch while the step runs)."""
        self.value = value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLossError(f"step {self.state.step}: objective {self.objective_name!r} returned "
                                     f"{value}; the weights were not updated. Lower optim.lr, set "
                                     f"optim.grad_clip, or check the data.")
        return loss

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)
