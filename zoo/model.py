"""ContrastiveModel: one tower per modality (encoder → projection) and a learnable temperature.

    model = zoo.create_model(towers={"image": {"encoder": "timm:resnet18"},
                                     "text": {"encoder": "hf:bert-base-uncased"}}, embed_dim=512)
    z = model.encode("text", ["a dog", "a cat"])          # (2, D), L2-normalised, no autograd
    q = model.encode("text", "a dog")                      # (D,): one input gives one vector
    model.similarity(z, q)                                 # (2,) cosine

A tower's key is usually its modality; ``{"left": {"modality": "test", "encoder": "mlp"}}``
gives two towers of one modality. Keys of a tower spec other than ``encoder``, ``modality``,
``projection`` and ``levels`` are the encoder's keyword arguments.
"""
from __future__ import annotations

import inspect
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo import inference
from zoo.checks import call_factory, recipe_key
from zoo.data.batches import batch_size, move_to
from zoo.errors import PluginError, RecipeError, ShapeError, UnknownNameError
from zoo.plugins import registry

TOWER_KEYS = ("encoder", "modality", "projection", "levels")
PROJECTIONS = ("linear", "mlp", "none")


@dataclass
class TowerConfig:
    modality: str
    encoder: str
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    projection: str = "linear"          # linear | mlp | none
    levels: list[str] = field(default_factory=list)  # encoder levels (forward_levels) to project too

    @classmethod
    def from_spec(cls, key: str, spec: Mapping[str, Any] | "TowerConfig") -> "TowerConfig":
        if isinstance(spec, TowerConfig):
            return spec
        spec = dict(spec)
        if "encoder" not in spec:
            raise RecipeError(f"tower {key!r} needs an 'encoder' (see `zoo list encoders`).")
        if "encoder_kwargs" in spec:  # the saved (config.json) form
            return cls(**spec)
        kw = {k: v for k, v in spec.items() if k not in TOWER_KEYS}
        return cls(modality=spec.get("modality", key), encoder=spec["encoder"], encoder_kwargs=kw,
                   projection=spec.get("projection", "linear"), levels=list(spec.get("levels", [])))


@dataclass
class ModelConfig:
    towers: dict[str, TowerConfig]
    embed_dim: int
    logit_scale: float = math.log(1 / 0.07)   # stored in log space, as CLIP
    logit_bias: float | None = None           # SigLIP uses -10
    max_logit_scale: float = 100.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelConfig":
        d = dict(d)
        d["towers"] = {k: TowerConfig.from_spec(k, v) for k, v in d["towers"].items()}
        return cls(**d)


def create_encoder(modality: str, name: str, *, assets_dir: str | None = None, **kw: Any) -> nn.Module:
    """Build a registered encoder: ``batch -> (B, D_enc)`` with attribute ``output_dim``.

    ``assets_dir`` (a checkpoint's ``assets/<tower>``) is handed to builders that declare such a
    parameter, so towers built from a path or a Hub name rebuild offline from their saved files.
    """
    entry = registry().get("encoders", name, modality)
    what = f"encoder {modality}/{name}"
    if assets_dir is not None and "assets_dir" in inspect.signature(entry.factory).parameters:
        kw["assets_dir"] = str(assets_dir)
    if entry.name != registry().canonical("encoders", name, modality):  # family: "timm:resnet18" -> build("resnet18")
        enc = call_factory(what, entry.factory, name.split(":", 1)[1], **kw)
    else:
        enc = call_factory(what, entry.factory, **kw)
    if not isinstance(enc, nn.Module) or not isinstance(getattr(enc, "output_dim", None), int):
        raise PluginError(f"{what} (plugin {entry.plugin!r}) must build an nn.Module with an int attribute "
                          f"'output_dim'; got {type(enc).__name__}.")
    return enc


def make_projection(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_dim, out_dim, bias=False)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, out_dim))
    if kind == "none":
        if in_dim != out_dim:
            raise ShapeError(f"projection 'none' needs the encoder's output_dim ({in_dim}) to equal embed_dim "
                             f"({out_dim}); use projection = 'linear' or set embed_dim = {in_dim}.")
        return nn.Identity()
    raise UnknownNameError("projection", kind, PROJECTIONS)


class Tower(nn.Module):
    """Encoder followed by a projection to the shared embedding size."""

    def __init__(self, config: TowerConfig, embed_dim: int, assets_dir: str | None = None):
        super().__init__()
        self.config = config
        self.encoder = create_encoder(config.modality, config.encoder, assets_dir=assets_dir, **config.encoder_kwargs)
        self.projection = make_projection(config.projection, self.encoder.output_dim, embed_dim)
        level_dims = getattr(self.encoder, "level_dims", {}) or {}
        unknown = [lv for lv in config.levels if lv not in level_dims]
        if unknown:
            raise UnknownNameError(f"level of encoder {config.encoder!r}", unknown[0], level_dims)
        self.level_projections = nn.ModuleDict(
            {lv: make_projection(config.projection, level_dims[lv], embed_dim) for lv in config.levels})

    def forward(self, batch: Any) -> Tensor:
        return self.projection(self.encoder(batch))  # (B, D_enc) -> (B, D)

    def forward_levels(self, batch: Any) -> dict[str, Tensor]:
        """``{level: (B, D)}`` for the configured levels, plus ``"final"``."""
        if not self.config.levels:
            return {"final": self(batch)}
        feats = self.encoder.forward_levels(batch)  # {level: (B, D_level)}, may include "final"
        out = {lv: proj(feats[lv]) for lv, proj in self.level_projections.items()}
        final = feats.get("final")
        out["final"] = self.projection(final) if final is not None else self(batch)
        return out

    def preprocess(self, raws: list[Any], prompt_name: str | None = None) -> Any:
        """Raw inputs (paths, arrays, strings…) → the batch the encoder takes. ``prompt_name`` is handed to
        an encoder whose ``preprocess`` takes one (sentence-transformers prompts); others refuse it."""
        spec = registry().modality(self.config.modality)
        self.check_prompt(prompt_name)
        loaded = [spec.load(r) for r in raws]
        own = getattr(self.encoder, "preprocess", None)
        if own is None:
            return spec.collate(loaded)
        return own(loaded, prompt_name=prompt_name) if prompt_name is not None else own(loaded)

    def check_prompt(self, prompt_name: str | None) -> None:
        """A ``prompt_name`` for an encoder whose ``preprocess`` takes none is an error, never ignored."""
        own = getattr(self.encoder, "preprocess", None)
        if prompt_name is not None and (own is None or "prompt_name" not in inspect.signature(own).parameters):
            raise RecipeError(f"prompt_name={prompt_name!r}: encoder {self.config.encoder!r} has no prompts; "
                              f"leave prompt_name unset for this tower.")


class ContrastiveModel(nn.Module):
    """Towers + ``logit_scale`` (log space, as CLIP) + optional ``logit_bias`` (SigLIP)."""

    def __init__(self, config: ModelConfig, assets_dir: str | os.PathLike | None = None):
        super().__init__()
        if config.embed_dim <= 0:
            raise RecipeError(f"embed_dim must be positive, got {config.embed_dim}.")
        if not config.towers:
            raise RecipeError("a model needs at least one tower: towers={modality: {'encoder': name}}.")
        self.config = config
        assets = {k: os.path.join(assets_dir, k) for k in config.towers
                  if assets_dir is not None and os.path.isdir(os.path.join(assets_dir, k))}
        self.towers = nn.ModuleDict()
        for k, c in config.towers.items():
            with recipe_key(f"model.towers.{k}"):  # an encoder's errors name the tower's recipe key
                self.towers[k] = Tower(c, config.embed_dim, assets.get(k))
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(config.logit_bias))) if config.logit_bias is not None else None
        self.source = "random init"  # where the weights came from; set by loaders

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def modalities(self) -> list[str]:
        return list(self.towers)

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def scale(self) -> Tensor:
        """The multiplier ``1/τ = exp(logit_scale)``, clamped at ``max_logit_scale``."""
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def tower(self, key: str) -> Tower:
        if key not in self.towers:
            raise UnknownNameError("tower", key, list(self.towers),
                                   hint=f"This model has towers for: {', '.join(self.towers)}.")
        return self.towers[key]

    def tower_for(self, view: str, modality: str) -> str:
        """The tower that encodes a view: the one named like it, else the only one of its modality."""
        if view in self.towers and self.towers[view].config.modality == modality:
            return view
        same = [k for k, t in self.towers.items() if t.config.modality == modality]
        if len(same) == 1:
            return same[0]
        if not same:
            raise UnknownNameError("tower", view, list(self.towers),
                                   hint=f"No tower encodes modality {modality!r}; add one under [model.towers.{view}].")
        raise RecipeError(f"view {view!r} ({modality}) is ambiguous: towers {same} all encode {modality}; "
                          f"name a tower {view!r}.")

    def preprocess(self, modality: str, raws: Any, prompt_name: str | None = None) -> Any:
        """Raw inputs → the tower's batch. One raw input (a string, an image tensor ``(C, H, W)``…, as the
        modality's ``is_single`` says) is a batch of one, never iterated into characters or channels."""
        tower = self.tower(modality)
        raws = [raws] if inference.is_single(tower.config.modality, raws) else list(raws)
        return tower.preprocess(raws, prompt_name=prompt_name)

    def encode(self, modality: str, inputs: Any, *, batch_size: int = 32, normalize: bool = True,
               progress: bool = False, device: Any = None, prompt_name: str | None = None) -> Tensor:
        """Embeddings of raw inputs, as ``SentenceTransformer.encode`` gives them.

        ``inputs``: a list of raw inputs (strings, paths, PIL images, arrays, waveforms, SMILES, PyG
        ``Data``…) → ``(N, D)``; one raw input → ``(D,)``; an already preprocessed batch (what
        :meth:`preprocess` returns) → ``(B, D)``. Runs under ``torch.no_grad`` in eval mode (the mode is
        restored after), ``batch_size`` inputs at a time, text sorted by length within the call (the
        output keeps the input order), on the model's device (``device=`` moves the model there first);
        ``progress=True`` shows a tqdm bar; ``prompt_name`` picks a sentence-transformers prompt (the
        model's ``default_prompt_name`` applies otherwise). L2-normalised unless ``normalize=False``.
        Embeddings stay on the model's device, in its dtype. Training goes through :meth:`forward`.
        """
        return inference.encode(self, modality, inputs, batch_size=batch_size, normalize=normalize, progress=progress,
                      device=device, prompt_name=prompt_name)

    def similarity(self, a: Tensor, b: Tensor, *, scaled: bool = False) -> Tensor:
        """Cosine similarities ``(N, M)`` of embeddings ``a (N, D)`` and ``b (M, D)`` (a ``(D,)`` side drops its
        axis). ``scaled=True`` gives the model's own logits, ``exp(logit_scale) · cos (+ logit_bias)``."""
        return inference.similarity(self, a, b, scaled=scaled)

    def embed_batch(self, modality: str, batch: Any, normalize: bool = True) -> Tensor:
        """A preprocessed ``batch`` → ``(B, D)`` with autograd (the training path): moved to the model's
        device, its floating tensors cast to the tower's dtype."""
        tower = self.tower(modality)
        # non-blocking to CUDA: a pinned batch (data.num_workers on CUDA pins) is copied while the GPU still works
        batch = move_to(batch, self.device, non_blocking=self.device.type == "cuda")
        z = tower(inference.cast_floats(batch, inference.module_dtype(tower), tower.config.modality))  # (B, D)
        self._check(modality, z, batch)
        return F.normalize(z, dim=-1) if normalize else z

    def encode_levels(self, modality: str, batch: Any, normalize: bool = True) -> dict[str, Tensor]:
        """``{level: (B, D)}`` for the tower's configured levels and ``"final"``."""
        tower = self.tower(modality)
        out = tower.forward_levels(inference.cast_floats(move_to(batch, self.device), inference.module_dtype(tower), tower.config.modality))
        for lv, z in out.items():
            self._check(f"{modality}/{lv}", z, batch)
        return {lv: F.normalize(z, dim=-1) if normalize else z for lv, z in out.items()}

    def forward(self, views: Mapping[str, tuple[str, Any]],
                levels: Mapping[str, Any] | None = None) -> dict[str, Tensor]:
        """``{view: (tower, batch)}`` → ``{view: (B, D)}``, normalised; with ``levels={view: {level…}}``
        also ``{"view/level": (B, D)}`` from the encoder's ``forward_levels``."""
        out = {}
        for name, (tower, batch) in views.items():
            wanted = (levels or {}).get(name)
            if not wanted:
                out[name] = self.embed_batch(tower, batch)
                continue
            per_level = self.encode_levels(tower, batch)
            out[name] = per_level.pop("final")
            out.update({f"{name}/{lv}": z for lv, z in per_level.items() if lv in wanted})
        return out

    def _check(self, where: str, z: Tensor, batch: Any) -> None:
        n = batch_size(batch, registry().modality(self.tower(where.split("/", 1)[0]).config.modality))
        if z.dim() != 2 or z.shape[1] != self.embed_dim or (n is not None and z.shape[0] != n):
            raise ShapeError(f"tower {where!r}: expected output shape ({n if n is not None else 'B'}, "
                             f"{self.embed_dim}), got {tuple(z.shape)}. Check the encoder's output_dim.")

    # save / load live in zoo.hub.format; these are the public entry points of the contract
    def save_pretrained(self, directory, **kw: Any):
        from zoo.hub.format import save_pretrained
        return save_pretrained(self, directory, **kw)

    def export(self, format: str, directory, **kw: Any):
        """Write this model in another library's format (``"sentence-transformers"``, ``"open_clip"``); see zoo.hub.export."""
        from zoo.hub.export import export
        return export(self, format, directory, **kw)

    def push_to_hub(self, repo_id: str, **kw: Any):
        from zoo.hub.format import push_to_hub
        return push_to_hub(self, repo_id, **kw)

    @classmethod
    def from_pretrained(cls, directory, **kw: Any) -> "ContrastiveModel":
        from zoo.hub.format import load_local
        return load_local(directory, **kw)


def create_model(towers: Mapping[str, Mapping[str, Any]], embed_dim: int, **kw: Any) -> ContrastiveModel:
    """Build a :class:`ContrastiveModel` from tower specs (see the module docstring)."""
    cfg = ModelConfig(towers={k: TowerConfig.from_spec(k, v) for k, v in towers.items()}, embed_dim=embed_dim, **kw)
    return ContrastiveModel(cfg)
