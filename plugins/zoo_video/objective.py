"""``clip_intra``: CLIP with intra-sample negatives (inter–intra contrast).

Paper: Tao, Wang & Yamasaki, "Self-supervised Video Representation Learning Using
Inter-intra Contrastive Framework", ACM MM 2020 (intra negatives made by breaking a clip's
temporal order), with the symmetric CLIP loss of Radford et al. 2021, "Learning Transferable
Visual Models From Natural Language Supervision".

Views (from the ``shuffled_frames`` pair strategy): an anchor ``a`` (e.g. ``video``), the other
view ``b`` (e.g. ``caption``) and ``a~`` = ``<anchor>_shuffled``, all ``(B, D)`` L2-normalised.
With ``s = logit_scale`` and ``L = s · b aᵀ`` (B × B)::

    loss = ½ [ CE([L | s·⟨b_i, a~_i⟩], i)    # b → a: its own shuffled clip is one more negative column
             + CE(Lᵀ, i) ]                   # a → b: the usual CLIP direction

Example::

    obj = ClipIntra()
    loss = obj({"video": v, "caption": c, "video_shuffled": v_sh}, logit_scale=14.3)
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import OptionError, ShapeError
from zoo.objectives.base import full_precision

from .pairs import SUFFIX


class ClipIntra(nn.Module):
    """Symmetric CLIP between two views plus each row's ``*_shuffled`` view as an extra negative."""

    def __init__(self, suffix: str = SUFFIX):
        super().__init__()
        if not suffix:
            raise OptionError("suffix", "clip_intra: suffix must name the negative view's suffix, e.g. '_shuffled'.")
        self.suffix = suffix

    def split(self, embeddings: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """``(anchor, other, anchor_negative)`` from the view names."""
        negatives = [k for k in embeddings if k.endswith(self.suffix)]
        others = [k for k in embeddings if not k.endswith(self.suffix)]
        if len(negatives) != 1 or len(others) != 2 or negatives[0][: -len(self.suffix)] not in others:
            raise ShapeError(f"clip_intra: expected views {{anchor, other, anchor{self.suffix}}} (from the "
                             f"shuffled_frames pair strategy), got {list(embeddings)}.")
        anchor = negatives[0][: -len(self.suffix)]
        other = next(k for k in others if k != anchor)
        a, b, neg = embeddings[anchor], embeddings[other], embeddings[negatives[0]]
        if a.dim() != 2 or a.shape != b.shape or a.shape != neg.shape:
            raise ShapeError(f"clip_intra: expected three (B, D) views of one shape, got {tuple(a.shape)}, "
                             f"{tuple(b.shape)}, {tuple(neg.shape)}.")
        return a, b, neg

    @full_precision  # bf16/fp16 embeddings are computed in float32, outside autocast
    def forward(self, embeddings: Mapping[str, Tensor], *, logit_scale, logit_bias=None, labels=None,
                mask=None) -> Tensor:
        a, b, neg = self.split(embeddings)
        s = logit_scale if isinstance(logit_scale, Tensor) else torch.tensor(float(logit_scale))
        logits = s * b @ a.T  # (B, B): row i = caption i against every video
        intra = s * (b * neg).sum(dim=-1, keepdim=True)  # (B, 1): caption i against its shuffled video
        target = torch.arange(a.shape[0], device=a.device)
        b_to_a = F.cross_entropy(torch.cat([logits, intra], dim=1), target)
        a_to_b = F.cross_entropy(logits.T, target)
        return (b_to_a + a_to_b) / 2
