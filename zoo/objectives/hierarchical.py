"""Hierarchical multi-level objective: a weighted sum of base objectives, one per level."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from zoo.checks import recipe_key
from zoo.errors import OptionError, RecipeError, ShapeError
from zoo.objectives.base import register_objective, require_labels
from zoo.protocols import ObjectiveTraits

LEVEL_KEYS = ("name", "views", "positives", "objective", "options", "weight", "logit_scale")
ROW = "row"


@dataclass(frozen=True)
class Level:
    """One validated level of a :class:`HierarchicalLoss`."""

    name: str
    views: tuple[str, ...]
    positives: str = ROW
    objective: str = "clip"
    options: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    logit_scale: float | None = None


def parse_level(spec: Mapping[str, Any], index: int) -> Level:
    """Check one ``levels`` entry and fill in its defaults (ValueError naming what is wrong)."""
    name = _check_keys(spec, f"hierarchical: levels[{index}]")
    where = f"hierarchical: level {name!r}"
    views = spec.get("views")
    if isinstance(views, str) or not views or not all(isinstance(v, str) and v for v in views):
        raise OptionError("levels",
                          f"{where} needs 'views': a non-empty list of embedding keys such as ['ecg', 'ecg/layer2'], "
                          f"got {views!r}.")
    positives = _text(spec.get("positives", ROW), f"{where}: 'positives' must be 'row' or a label name such as 'patient'")
    objective = _text(spec.get("objective", "clip" if positives == ROW else "supcon"),
                      f"{where}: 'objective' must be a registered objective name such as 'supcon'")
    options = spec.get("options", {})
    if not isinstance(options, Mapping):
        raise OptionError("levels",
                          f"{where}: 'options' must be a table/dict of the base objective's options, got {options!r}.")
    weight = _number(spec.get("weight", 1.0), lambda w: w >= 0, f"{where}: 'weight' must be a number ≥ 0 (0 switches "
                     f"the level off)")
    scale = spec.get("logit_scale")
    if scale is not None:
        scale = _number(scale, lambda v: v > 0, f"{where}: 'logit_scale' must be a number > 0 (a fixed 1/τ for this "
                        f"level) or absent")
    return Level(name, tuple(views), positives, objective, dict(options), weight, scale)


def _check_keys(spec: Any, where: str) -> str:
    """A mapping with only :data:`LEVEL_KEYS` and a name; returns the name."""
    if not isinstance(spec, Mapping):
        raise OptionError("levels",
                          f"{where} must be a table/dict with keys {', '.join(LEVEL_KEYS)}, got {type(spec).__name__}.")
    unknown = sorted(set(spec) - set(LEVEL_KEYS))
    if unknown:
        raise OptionError("levels",
                          f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; valid keys: "
                          f"{', '.join(LEVEL_KEYS)}.")
    return _text(spec.get("name"), f"{where} needs a 'name' (a non-empty string such as 'patient')")


def _text(value: Any, problem: str) -> str:
    if not isinstance(value, str) or not value:
        raise OptionError("levels", f"{problem}, got {value!r}.")
    return value


def _number(value: Any, ok, problem: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
        raise OptionError("levels", f"{problem}, got {value!r}.")
    return float(value)


def build_objective(level: Level) -> nn.Module:
    """The level's base objective, built through the registry."""
    from zoo import create_objective  # here, not at import time: the registry imports this package

    options = dict(level.options)
    try:
        with recipe_key(""):  # the level's own options: reported below under 'levels'
            made = create_objective(level.objective, **options)
    except RecipeError as exc:
        raise OptionError("levels",
                          f"hierarchical: level {level.name!r}, objective {level.objective!r}: {exc}") from exc
    if ObjectiveTraits.of(made).supports_label_positives:
        if options.get("label") not in (None, level.positives):
            raise OptionError("levels",
                              f"hierarchical: level {level.name!r} sets options.label={options['label']!r} but its "
                              f"positives are {level.positives!r}; drop options.label (the level passes its "
                              f"positives).")
    elif level.positives != ROW:
        raise OptionError("levels",
                          f"hierarchical: level {level.name!r} has label positives {level.positives!r}, but objective "
                          f"{level.objective!r} only knows same-row positives. Use an objective that supports label "
                          f"positives (e.g. 'supcon') or positives='row'.")
    return made


@register_objective("hierarchical", citation="Wang et al. 2023, Contrast Everything: A Hierarchical Contrastive Framework "
                    "for Medical Time-Series (COMET, NeurIPS 2023); Gu et al. 2025, BioCLIP 2: Emergent Properties "
                    "from Scaling Hierarchical Contrastive Learning")
class HierarchicalLoss(nn.Module):
    """Sum over levels of a base objective, each level with its own views, positives and weight.

    Papers: Wang, Han, Wang, Zhang 2023, "Contrast Everything: A Hierarchical Contrastive
    Framework for Medical Time-Series" (COMET, NeurIPS 2023: observation / sample / trial /
    patient levels); Gu et al. 2025, "BioCLIP 2: Emergent Properties from Scaling Hierarchical
    Contrastive Learning" (taxonomic ranks kingdom … species); Sun, Lian, Liu, Tao 2024, "HiCMAE:
    Hierarchical Contrastive Masked Autoencoder for Self-Supervised Audio-Visual Emotion
    Recognition" (contrast at intermediate encoder layers).

    Equation::

        L = Σ_l w_l · L_l( {v: z_v}_{v ∈ views_l} ;  positives_l )

    Each level (a dict; ``levels`` is a list of them, e.g. ``[[objective.options.levels]]``
    tables of a recipe) has the keys:

    - ``name`` (str, unique);
    - ``views``: embedding keys to contrast: a view's final embedding (``"ecg"``) or a named
      intermediate level of that view's encoder (``"ecg/layer2"``, from the encoder's
      ``forward_levels``; the trainer puts it in ``embeddings`` under that key);
    - ``positives``: ``"row"`` (same row across views) or a label name (``"patient"``,
      ``"species"``) looked up in ``labels``;
    - ``objective``: any registered objective (default ``"clip"`` for row positives,
      ``"supcon"`` for label positives). Label positives need an objective whose class sets
      ``supports_label_positives = True``; it receives ``labels={positives: y}`` (row
      positives give such objectives ``labels={"row": arange(B)}``, others ``labels=None``);
    - ``options``: dict for that objective; ``weight`` (float ≥ 0, default 1; 0 switches the
      level off); ``logit_scale`` (optional fixed 1/τ for this level, instead of the model's).

    ``required_views`` is the set of embedding keys the active levels need (so the trainer
    knows which ``forward_levels`` outputs to compute); ``required_levels`` maps each view to
    its intermediate level names. :meth:`level_losses` returns the unweighted loss per level
    (for logging). ``mask`` is passed on to each level, keyed by the embedding keys.

    Shapes: embeddings ``{key: (B, D)}`` L2-normalised, rows aligned; labels ``{name: (B,)}``;
    returns ``()``.

    Example:
        >>> loss_fn = HierarchicalLoss(levels=[
        ...     {"name": "sample", "views": ["ecg", "ecg_aug"]},
        ...     {"name": "patient", "views": ["ecg", "ecg_aug"], "positives": "patient", "weight": 0.5}])
        >>> loss = loss_fn({"ecg": z1, "ecg_aug": z2}, logit_scale=14.3, labels={"patient": pid})
    """

    def __init__(self, levels: list[dict[str, Any]]):
        super().__init__()
        if isinstance(levels, Mapping) or not isinstance(levels, (list, tuple)) or not levels:
            raise OptionError("levels",
                              "hierarchical: 'levels' must be a non-empty list of level tables, each with at least "
                              "'name' and 'views' (see the HierarchicalLoss docstring).")
        self.levels = [parse_level(spec, i) for i, spec in enumerate(levels)]
        names = [lv.name for lv in self.levels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise OptionError("levels",
                              f"hierarchical: level names must be unique, got {', '.join(map(repr, dupes))} twice.")
        if not any(lv.weight > 0 for lv in self.levels):
            raise OptionError("levels", "hierarchical: every level has weight 0; give at least one level a weight > 0.")
        self.objectives = nn.ModuleDict({lv.name: build_objective(lv) for lv in self.levels})

    @property
    def active_levels(self) -> list[Level]:
        return [lv for lv in self.levels if lv.weight > 0]

    @property
    def required_views(self) -> frozenset[str]:
        """Every embedding key an active level reads (``"view"`` or ``"view/level"``)."""
        return frozenset(key for lv in self.active_levels for key in lv.views)

    @property
    def required_levels(self) -> dict[str, set[str]]:
        """``{view: {intermediate level names}}`` for the ``"view/level"`` keys in :attr:`required_views`."""
        out: dict[str, set[str]] = {}
        for key in self.required_views:
            if "/" in key:
                view, level = key.split("/", 1)
                out.setdefault(view, set()).add(level)
        return out

    def forward(self, embeddings, *, logit_scale, logit_bias=None, labels=None, mask=None) -> Tensor:
        losses = self.level_losses(embeddings, logit_scale=logit_scale, logit_bias=logit_bias, labels=labels, mask=mask)
        weights = {lv.name: lv.weight for lv in self.levels}
        return torch.stack([weights[name] * loss for name, loss in losses.items()]).sum()

    def level_losses(self, embeddings, *, logit_scale, logit_bias=None, labels=None, mask=None) -> dict[str, Tensor]:
        """``{level name: unweighted loss ()}`` for every level with weight > 0."""
        if not isinstance(embeddings, Mapping):
            raise ShapeError(f"hierarchical: embeddings must be a mapping {{key: (B, D)}}, got {type(embeddings).__name__}.")
        out = {}
        for lv in self.active_levels:
            chosen = self._views_of(lv, embeddings)
            scale = logit_scale if lv.logit_scale is None else lv.logit_scale
            out[lv.name] = self.objectives[lv.name](
                chosen, logit_scale=scale, logit_bias=logit_bias,
                labels=self._labels_of(lv, labels, chosen), mask=self._mask_of(lv, mask))
        return out

    @staticmethod
    def _views_of(lv: Level, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]:
        missing = [k for k in lv.views if k not in embeddings]
        if missing:
            raise ShapeError(f"hierarchical: level {lv.name!r} expected embeddings {', '.join(map(repr, missing))}, got "
                             f"keys {', '.join(map(repr, embeddings)) or 'none'}. Check the level's 'views' (intermediate "
                             f"levels are 'view/level' keys from the encoder's forward_levels).")
        return {k: embeddings[k] for k in lv.views}

    def _labels_of(self, lv: Level, labels, chosen: dict[str, Tensor]) -> dict[str, Tensor] | None:
        first = next(iter(chosen.values()))                     # (B, D)
        if not ObjectiveTraits.of(self.objectives[lv.name]).supports_label_positives:
            return None
        if lv.positives == ROW:
            return {ROW: torch.arange(first.shape[0], device=first.device)}
        return {lv.positives: require_labels(labels, lv.positives, first.shape[0], f"hierarchical level {lv.name!r}")}

    @staticmethod
    def _mask_of(lv: Level, mask) -> dict[str, Tensor] | None:
        if not mask:
            return None
        picked = {k: mask.get(k, mask.get(k.split("/", 1)[0])) for k in lv.views}
        picked = {k: m for k, m in picked.items() if m is not None}
        return picked or None
