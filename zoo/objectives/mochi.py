"""MoCHi: InfoNCE with synthetic hard negatives mixed from the hardest real ones."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import OptionError, ShapeError
from zoo.objectives._two_view import two_view_inputs
from zoo.objectives.base import full_precision, register_objective


@register_objective("mochi", citation="Kalantidis et al. 2020, Hard Negative Mixing for Contrastive Learning (NeurIPS 2020, arXiv:2010.01028)")
class MoCHiLoss(nn.Module):
    """InfoNCE whose negatives are extended with feature-level mixtures of the hardest ones.

    Paper: Kalantidis, Sariyildiz, Pion, Weinzaepfel, Larlus, "Hard Negative Mixing for
    Contrastive Learning", NeurIPS 2020.

    For a query q (a row of one view) with key k (the same row of the other view) and
    negatives n ∈ Q (the other view's other rows, plus the optional ``queue``), let Q̃ be the
    ``n_hard`` negatives most similar to q. Equations of the synthetic negatives (paper §4)::

        h_k  = h̃_k / ‖h̃_k‖,   h̃_k  = α_k n_i + (1 − α_k) n_j,   n_i, n_j ∈ Q̃,  α_k ~ U(0, 1)     (n_mix of them)
        h'_k = h̃'_k / ‖h̃'_k‖, h̃'_k = β_k q   + (1 − β_k) n_j,   n_j ∈ Q̃,       β_k ~ U(0, 0.5)   (n_mix_query)

    and the loss is InfoNCE over the real and synthetic negatives (s = logit_scale = 1/τ)::

        L = −log( e^{s q·k} / (e^{s q·k} + Σ_{n∈Q} e^{s q·n} + Σ_h e^{s q·h} + Σ_{h'} e^{s q·h'}) )

    Synthetic points are constants (no gradient flows through them, as in the paper); they
    are never added to any queue. With ``symmetric=True`` both views take the query role in
    turn and the two losses are averaged (the zoo's two-view convention); ``False`` is
    MoCo's direction only (first view = queries, second = keys). ``n_hard`` is capped at the
    number of available negatives. With ``n_mix = n_mix_query = 0`` this is InfoNCE (CLIP's
    loss when symmetric). Paper defaults (ImageNet-1K, queue 65536): N = 1024, s = 512,
    s' = 256, τ = 0.2.

    Randomness: the indices and coefficients are drawn from ``generator`` if one is passed
    to ``forward``, else from the module's own ``torch.Generator`` seeded with ``seed``
    (deterministic sequence across calls); ``seed=None`` uses torch's global RNG.

    Shapes: embeddings ``{view1: (B, D), view2: (B, D)}`` L2-normalised, B ≥ 2; ``queue``:
    ``(K, D)`` L2-normalised extra negatives (e.g. a MoCo memory queue of keys, detached), or
    None; returns ``()``. The synthetic points are not materialised: the logits take
    ``O(B·(B + K + n_mix + n_mix_query))`` memory, plus a gradient-free temporary ``(B, n_mix, D)``
    for ``n_i·n_j`` (see :meth:`synthetic_logits`).

    Example:
        >>> loss = MoCHiLoss(n_hard=64, n_mix=32, n_mix_query=16)(
        ...     {"x.1": q, "x.2": k}, logit_scale=5.0, queue=memory)   # memory: (K, D)
    """

    def __init__(self, n_hard: int = 1024, n_mix: int = 512, n_mix_query: int = 256,
                 symmetric: bool = True, seed: int | None = 0):
        super().__init__()
        for name, value, low in (("n_hard", n_hard, 1), ("n_mix", n_mix, 0), ("n_mix_query", n_mix_query, 0)):
            if not isinstance(value, int) or value < low:
                raise OptionError(name, f"mochi: {name} must be an integer ≥ {low}, got {value!r} "
                                 f"(paper: n_hard=1024, n_mix=512, n_mix_query=256).")
        self.n_hard, self.n_mix, self.n_mix_query = n_hard, n_mix, n_mix_query
        self.symmetric = bool(symmetric)
        self.generator = None if seed is None else torch.Generator().manual_seed(int(seed))

    @full_precision
    def forward(self, embeddings, *, logit_scale, logit_bias=None, labels=None, mask=None,
                queue: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        a, b, scale = two_view_inputs(embeddings, logit_scale, "mochi")
        if queue is not None and (queue.dim() != 2 or queue.shape[1] != a.shape[1]):
            raise ShapeError(f"mochi: queue expected shape (K, {a.shape[1]}), got {tuple(queue.shape)}.")
        gen = generator if generator is not None else self.generator
        loss = self._one_direction(a, b, queue, scale, gen)
        if self.symmetric:
            loss = (loss + self._one_direction(b, a, queue, scale, gen)) / 2
        return loss

    def _one_direction(self, q: Tensor, k: Tensor, queue: Tensor | None, scale: Tensor, gen) -> Tensor:
        """Mean InfoNCE of queries ``q`` against keys ``k`` plus real and synthetic negatives."""
        candidates = k if queue is None else torch.cat([k, queue.to(k)])   # (B+K, D)
        sim = q @ candidates.T                                             # (B, B+K)
        rows = torch.arange(q.shape[0], device=q.device)
        minus_inf = torch.tensor(float("-inf"), dtype=sim.dtype, device=sim.device)
        hardness = sim.detach().index_put((rows, rows), minus_inf)         # (B, B+K) -inf at the positive
        draws = self.draw(hardness, gen)
        real = sim * scale                                                 # (B, B+K)
        mixed = self.synthetic_logits(q, candidates, hardness, draws) * scale   # (B, S)
        logits = torch.cat([real[rows, rows, None], real.index_put((rows, rows), minus_inf), mixed], dim=1)
        return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()

    def draw(self, hardness: Tensor, gen) -> dict[str, Tensor]:
        """Random choices: candidate indices among each query's hardest and mixing coefficients.

        ``hardness (B, C)``: similarity of each query to each candidate, ``-inf`` at its positive.
        Returns ``i, j (B, n_mix)``, ``alpha (B, n_mix)``, ``jq (B, n_mix_query)``, ``beta``.
        """
        batch, n_cand = hardness.shape
        hard = hardness.topk(min(self.n_hard, n_cand - 1), dim=1).indices     # (B, H) Q̃ of each query
        device = gen.device if gen is not None else torch.device("cpu")

        def pick(count: int) -> Tensor:                                    # (B, count) candidate ids
            picked = torch.randint(hard.shape[1], (batch, count), generator=gen, device=device)
            return hard.gather(1, picked.to(hard.device))

        def uniform(count: int, high: float) -> Tensor:                    # (B, count) ~ U(0, high)
            u = torch.rand(batch, count, generator=gen, dtype=hardness.dtype, device=device)
            return (u * high).to(hardness.device)

        alpha, i, j = uniform(self.n_mix, 1.0), pick(self.n_mix), pick(self.n_mix)
        beta, jq = uniform(self.n_mix_query, 0.5), pick(self.n_mix_query)
        return {"alpha": alpha, "i": i, "j": j, "beta": beta, "jq": jq}

    @staticmethod
    def synthetic_logits(q: Tensor, candidates: Tensor, hardness: Tensor, d: dict[str, Tensor]) -> Tensor:
        """``q·h`` for every synthetic negative, ``(B, S)``, without building the ``(B, S, D)`` points.

        With unit candidates, ``q·h = (α q·n_i + (1−α) q·n_j) / ‖α n_i + (1−α) n_j‖`` and the norm
        needs only ``n_i·n_j``; likewise for the query mixes. Gradients reach ``q`` only (the
        synthetic points are constants), exactly as with :meth:`mix_negatives`.
        """
        c = candidates.detach()
        sim_q = q @ c.T                                                    # (B, C) grad to q only
        sq = c.pow(2).sum(dim=1)                                           # (C,) ‖n‖²
        alpha, i, j, beta, jq = d["alpha"], d["i"], d["j"], d["beta"], d["jq"]
        with torch.no_grad():
            if c.shape[0] ** 2 <= i.numel() * c.shape[1]:                  # Gram no bigger than the pairs
                cross = (c @ c.T)[i, j]                                    # (B, n_mix) n_i·n_j
            else:                                                          # e.g. a long queue
                cross = torch.einsum("bsd,bsd->bs", c[i], c[j])
            norm2 = alpha ** 2 * sq[i] + (1 - alpha) ** 2 * sq[j] + 2 * alpha * (1 - alpha) * cross
            q_sq = q.detach().pow(2).sum(dim=1, keepdim=True)              # (B, 1)
            norm2_q = beta ** 2 * q_sq + (1 - beta) ** 2 * sq[jq] + 2 * beta * (1 - beta) * hardness.gather(1, jq)
        feature = (alpha * sim_q.gather(1, i) + (1 - alpha) * sim_q.gather(1, j)) / _safe_norm(norm2)
        self_sim = (q * q.detach()).sum(dim=1, keepdim=True)               # (B, 1) q·q̄, grad to q only
        query = (beta * self_sim + (1 - beta) * sim_q.gather(1, jq)) / _safe_norm(norm2_q)
        return torch.cat([feature, query], dim=1)

    def mix_negatives(self, q: Tensor, candidates: Tensor, hardness: Tensor, gen) -> Tensor:
        """The synthetic negatives themselves, ``(B, n_mix + n_mix_query, D)``, unit-norm, detached.

        The explicit construction of the paper, for inspection and tests; ``forward`` uses the
        equivalent :meth:`synthetic_logits`, which needs ``O(B·S)`` memory instead of ``O(B·S·D)``.
        """
        q, c, d = q.detach(), candidates.detach(), self.draw(hardness, gen)
        alpha, beta = d["alpha"][..., None], d["beta"][..., None]         # (B, n, 1)
        feature = alpha * c[d["i"]] + (1 - alpha) * c[d["j"]]             # (B, n_mix, D)
        query = beta * q[:, None, :] + (1 - beta) * c[d["jq"]]            # (B, n_mix_query, D)
        return F.normalize(torch.cat([feature, query], dim=1), dim=-1)


def _safe_norm(norm2: Tensor) -> Tensor:
    """``‖x‖`` from ``‖x‖²`` as ``F.normalize`` divides: never below 1e-12."""
    return norm2.clamp(min=0).sqrt().clamp(min=1e-12)
