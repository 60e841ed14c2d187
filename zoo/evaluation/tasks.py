"""The built-in evaluation tasks: zero-shot classification, retrieval, linear probes, alignment and uniformity.

    zoo.evaluate(model, "digits", task="zero_shot")          # {"top1": …, "top5": …}
    zoo eval runs/digits-clip --dataset digits --task retrieval

Every task embeds the evaluation split once with :func:`zoo.evaluation.embed.embed_dataset`. The defaults
are the same for ``zoo.evaluate``, ``zoo eval`` and a recipe's ``[eval]`` (the trainer calls
:func:`run_tasks`): retrieval and alignment match by label when the dataset has one label field
(``match="auto"``), by row otherwise; ``label=`` picks one of several.

This module is a core plugin: it registers its tasks with ``zoo_register_eval_tasks`` exactly as a
third-party plugin would; :mod:`zoo.evaluation.runner` runs and checks tasks from the registry.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from zoo import checks
from zoo.errors import DataError, UnknownNameError
from zoo.evaluation.embed import Embedded, embed_dataset
from zoo.evaluation.runner import (  # noqa: F401 - the public names of zoo.evaluation.tasks before the registry
                                   LOWER_IS_BETTER,
                                   best_mode,
                                   check_metric_fields,
                                   eval_problems,
                                   evaluate,
                                   format_table,
                                   needs_train,
                                   run_tasks,
                                   task_names,
                                   task_options,
)
from zoo.hookspecs import hookimpl


def _label(embedded: Embedded, label: str | None) -> torch.Tensor:
    if label is None:
        if len(embedded.labels) != 1:
            raise DataError(f"say which label to use (label=…); the dataset has {list(embedded.labels) or 'none'}.")
        label = next(iter(embedded.labels))
    if label not in embedded.labels:
        raise UnknownNameError("label", label, embedded.labels)
    return embedded.labels[label]


def topk_accuracy(logits: torch.Tensor, y: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """``logits (N, C)``, ``y (N,)`` → ``{"top1": …, "top5": …}`` (k capped at C)."""
    order = logits.argsort(dim=1, descending=True)                    # (N, C)
    hit = order == y[:, None]
    return {f"top{k}": hit[:, :min(k, logits.shape[1])].any(dim=1).float().mean().item() for k in ks}


@torch.no_grad()
def class_embeddings(model, class_names: list[str], prompts: list[str], tower: str) -> torch.Tensor:
    """Each class's prompts embedded, averaged and re-normalised: ``(C, D)``."""
    out = []
    for name in class_names:
        texts = [p.format(name) for p in prompts]
        z = model.encode(tower, model.preprocess(tower, texts)).float().cpu().mean(0)
        out.append(z / z.norm())
    return torch.stack(out)


def zero_shot(model, ds, embedded: Embedded, field: str | None = None, label: str | None = None,
              target: str | None = None, score: str = "mip") -> dict[str, float]:
    """Class prompts (CLIP) when the dataset has them and one of its fields is of a modality that encodes
    prompts (registered with ``prompts=True``, as text is); else, for three or more fields, the prediction
    of ``target`` from the others, scored by Symile's multilinear inner product (``score="mip"``) or by
    the sum of pairwise cosine similarities (``score="pairwise"``, how pairwise-CLIP models predict a
    third modality)."""
    prompted = [f for f, m in embedded.modalities.items() if encodes_prompts(m)]
    if getattr(ds, "class_names", None) and getattr(ds, "prompts", None) and prompted and target is None:
        inputs = [f for f in embedded.emb if f not in prompted]
        field = field or (inputs[0] if inputs else None)
        if field is None:
            raise DataError(f"zero_shot needs a field to classify besides the prompt field(s) {prompted}.")
        tower = model.tower_for(prompted[0], embedded.modalities[prompted[0]])
        classes = class_embeddings(model, list(ds.class_names), list(ds.prompts), tower)   # (C, D)
        return topk_accuracy(embedded.emb[field] @ classes.T, _label(embedded, label))
    if len(embedded.emb) >= 3:
        return mip_zero_shot(embedded, target or next(iter(embedded.emb)), score=score)
    raise DataError("zero_shot needs class names and prompts with a field of a modality that encodes prompts "
                    "(e.g. text), or ≥ 3 modalities (Symile).")


def encodes_prompts(modality: str) -> bool:
    """Whether ``modality`` was registered with ``prompts=True`` (it embeds class prompt strings)."""
    from zoo.plugins import registry
    try:
        return registry().modality(modality).prompts
    except UnknownNameError:
        return False


def mip_zero_shot(embedded: Embedded, target: str, score: str = "mip") -> dict[str, float]:
    """Predict ``target`` from the other fields (every row's target is a candidate); a prediction
    counts as right when the chosen candidate's raw value equals the true one."""
    from zoo.objectives.symile import mip_similarity
    if target not in embedded.emb:
        raise UnknownNameError("zero-shot target field", target, embedded.emb)
    others = {f: z for f, z in embedded.emb.items() if f != target}
    if score == "mip":
        scores = mip_similarity(others, embedded.emb[target])           # (N, N): row i vs candidate j
    elif score == "pairwise":
        scores = sum(z @ embedded.emb[target].T for z in others.values())  # (N, N)
    else:
        raise UnknownNameError("zero-shot score", score, ("mip", "pairwise"))
    pred = scores.argmax(dim=1)
    raws = embedded.raws[target]
    right = [_same(raws[int(p)], raws[i]) for i, p in enumerate(pred)]
    return {"top1": float(np.mean(right)), "candidates": len(raws)}


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return bool(torch.equal(a, torch.as_tensor(b)))
    return a == b


MATCHES = ("auto", "index", "label")


def resolve_match(embedded: Embedded, match: str = "auto", label: str | None = None) -> str:
    """``"auto"`` → ``"label"`` when a label is named or the dataset has exactly one, else ``"index"``."""
    if match not in MATCHES:
        raise UnknownNameError("retrieval match", match, MATCHES)
    if match == "auto":
        return "label" if label is not None or len(embedded.labels) == 1 else "index"
    return match


def _pair(embedded: Embedded, fields, task: str) -> tuple[str, str]:
    names = list(fields or embedded.emb)
    if len(names) < 2:
        raise DataError(f"{task} compares two fields; the model encodes only {names} of this dataset. Evaluate a "
                        f"dataset with two modalities the model encodes (e.g. image and caption).")
    return names[0], names[1]


def retrieval(embedded: Embedded, fields: tuple[str, str] | None = None, match: str = "auto",
              label: str | None = None) -> dict[str, float]:
    """Recall@1/5/10 and mean/median rank in both directions for a field pair.

    ``match="index"``: only the paired row is right; ``"label"``: any row of the same label;
    ``"auto"`` (the default): ``"label"`` when the dataset has one label field (or ``label`` is given).
    """
    a, b = _pair(embedded, fields, "retrieval")
    sim = embedded.emb[a] @ embedded.emb[b].T                           # (N, N)
    match = resolve_match(embedded, match, label)
    if match == "label":
        y = _label(embedded, label)
        right = y[:, None] == y[None, :]
    else:
        right = torch.eye(sim.shape[0], dtype=torch.bool)
    out: dict[str, Any] = {"match": match if match == "index" else f"label ({label or next(iter(embedded.labels))})"}
    for name, s, r in ((f"{a}->{b}", sim, right), (f"{b}->{a}", sim.T, right.T)):
        best = s.masked_fill(~r, float("-inf")).max(dim=1).values      # best right candidate per query
        rank = 1 + (s > best[:, None]).sum(dim=1).float()               # (N,) 1-based
        for k in (1, 5, 10):
            out[f"{name} R@{k}"] = (rank <= k).float().mean().item()
        out[f"{name} mean_rank"] = rank.mean().item()
        out[f"{name} median_rank"] = rank.median().item()
    return out


def alignment_uniformity(embedded: Embedded, fields: tuple[str, str] | None = None,
                         label: str | None = None) -> dict[str, float]:
    """Wang & Isola's alignment (lower: positives closer) and uniformity (lower: more uniform).

    Two fields: the paired rows are the positives. One field (a text corpus): the rows of the same
    label are, when the dataset has a label; without one there are no positives and only the
    uniformity is reported."""
    from zoo.objectives.align_uniform import alignment, uniformity
    if len(fields or embedded.emb) == 1:
        f = (fields or list(embedded.emb))[0]
        z = embedded.emb[f]                                            # (N, D)
        out = {f"uniformity {f}": uniformity(z).item()}
        if label is not None or len(embedded.labels) == 1:
            y = _label(embedded, label)
            # mean ‖z_i − z_j‖² over same-label pairs i < j, per class n·Σ‖z‖² − ‖Σz‖² (O(N·D), not O(N²))
            total, pairs = 0.0, 0
            for c in y.unique():
                zc = z[y == c]                                          # (n_c, D)
                total += (len(zc) * zc.pow(2).sum() - zc.sum(0).pow(2).sum()).item()
                pairs += len(zc) * (len(zc) - 1) // 2
            if pairs:
                out[f"alignment {f} (same label)"] = max(total, 0.0) / pairs
        return out
    a, b = _pair(embedded, fields, "alignment")
    za, zb = embedded.emb[a], embedded.emb[b]
    return {f"alignment {a}-{b}": alignment(za, zb).item(), f"uniformity {a}": uniformity(za).item(),
            f"uniformity {b}": uniformity(zb).item()}


def linear_probe(model, train_ds, test_ds, field: str | None = None, label: str | None = None,
                 target: str | None = None, batch_size: int = 256, baseline: bool = True) -> dict[str, float]:
    """Logistic (labels) or ridge (float ``targets``) regression on frozen embeddings, fixed split;
    with ``baseline`` also on the dataset's baseline features (raw pixels, fingerprints…)."""
    require_sklearn()  # before any embedding is computed
    fields = [field] if field else None
    tr, te = (embed_dataset(model, d, fields=fields, batch_size=batch_size) for d in (train_ds, test_ds))
    field = field or next(iter(tr.emb))
    y_tr, y_te, kind = _probe_targets(train_ds, test_ds, tr, te, label, target)
    out = {f"{kind} (embeddings)": _fit_probe(tr.emb[field].numpy(), y_tr, te.emb[field].numpy(), y_te, kind)}
    if baseline:
        feats = [baseline_features(d, field) for d in (train_ds, test_ds)]
        if feats[0] is not None:
            out[f"{kind} (baseline: {feats[0][1]})"] = _fit_probe(feats[0][0], y_tr, feats[1][0], y_te, kind)
    return out


def _probe_targets(train_ds, test_ds, tr: Embedded, te: Embedded, label, target):
    targets = getattr(train_ds, "targets", None)
    if target is not None or (targets and not tr.labels):
        name = target or next(iter(targets))
        return (np.asarray(train_ds.targets[name], dtype=np.float64), np.asarray(test_ds.targets[name], np.float64),
                "r2")
    return _label(tr, label).numpy(), _label(te, label).numpy(), "accuracy"


def require_sklearn() -> None:
    """The linear probe's scikit-learn, or a :class:`PluginError` saying how to install it."""
    checks.require("sklearn", "data", "the linear_probe evaluation task", package="scikit-learn")


def _fit_probe(x_tr, y_tr, x_te, y_te, kind: str) -> float:
    require_sklearn()
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    if kind == "accuracy":
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    else:
        clf = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    clf.fit(x_tr, y_tr)
    return float(clf.score(x_te, y_te))


def baseline_features(ds, field: str):
    """``(features (N, F), name)``: the dataset's own ``baseline_features(field)`` (e.g. Morgan
    fingerprints for molecules) or its raw tensors flattened (pixels); ``None`` if neither."""
    if hasattr(ds, "baseline_features"):
        return ds.baseline_features(field)
    first = ds[0][field]
    if not isinstance(first, torch.Tensor):
        return None
    return np.stack([ds[i][field].flatten().numpy() for i in range(len(ds))]), "raw values"


# -- the built-in tasks, registered through the hook a plugin uses (this module is a core plugin) ----------
# Each ``run(model, dataset, **options)`` embeds the split itself; its keyword parameters are the options
# of ``[eval.options.<task>]``.
def run_zero_shot(model, dataset, *, batch_size: int = 256, fields: list[str] | None = None,
                  field: str | None = None, label: str | None = None, target: str | None = None,
                  score: str = "mip") -> dict[str, float]:
    embedded = embed_dataset(model, dataset, fields=fields, batch_size=batch_size, keep_raws=True)
    return zero_shot(model, dataset, embedded, field=field, label=label, target=target, score=score)


def run_retrieval(model, dataset, *, batch_size: int = 256, fields: list[str] | None = None, match: str = "auto",
                  label: str | None = None) -> dict[str, float]:
    embedded = embed_dataset(model, dataset, fields=fields, batch_size=batch_size)
    return retrieval(embedded, fields=fields, match=match, label=label)


def run_alignment(model, dataset, *, batch_size: int = 256, fields: list[str] | None = None,
                  label: str | None = None) -> dict[str, float]:
    embedded = embed_dataset(model, dataset, fields=fields, batch_size=batch_size)
    return alignment_uniformity(embedded, fields=fields, label=label)


def run_linear_probe(model, dataset, *, train_dataset, batch_size: int = 256, field: str | None = None,
                     label: str | None = None, target: str | None = None, baseline: bool = True) -> dict[str, float]:
    return linear_probe(model, train_dataset, dataset, field=field, label=label, target=target,
                        batch_size=batch_size, baseline=baseline)


def retrieval_metric_fields(metric: str, fields: list[str]) -> list[str]:
    """``"a->b R@1"`` → ``[a, b]``."""
    pair = re.fullmatch(r"(.+)->(.+?) \S+", metric)
    return [pair.group(1), pair.group(2)] if pair else []


def alignment_metric_fields(metric: str, fields: list[str]) -> list[str]:
    """``"uniformity a"`` → ``[a]``; ``"alignment a-b"`` → ``[a, b]`` (split where both are fields)."""
    what, _, rest = metric.partition(" ")
    if what == "uniformity":
        return [rest]
    if what == "alignment" and rest.endswith(" (same label)"):  # one field: its same-label rows
        return [rest.removesuffix(" (same label)")]
    if what == "alignment" and rest:
        return next(([a, b] for a in fields for b in fields if f"{a}-{b}" == rest), [rest])
    return []


@hookimpl
def zoo_register_eval_tasks(register):
    register("zero_shot", run_zero_shot, metrics=r"top\d+|candidates", choices={"score": ("mip", "pairwise")},
             description="zero-shot classification by class prompts, or Symile's prediction of one field")
    register("retrieval", run_retrieval, metrics=r".+->.+ .+", lower_is_better=r".*rank.*",
             choices={"match": MATCHES}, metric_fields=retrieval_metric_fields,
             description="recall@k and ranks between two fields, both directions")
    register("linear_probe", run_linear_probe, needs_train=True, metrics=r"(accuracy|r2) \(.+\)",
             description="logistic/ridge regression on frozen embeddings (scikit-learn)")
    register("alignment", run_alignment, metrics=r"(alignment|uniformity) .+",
             lower_is_better=r"(alignment|uniformity) .+", metric_fields=alignment_metric_fields,
             description="Wang & Isola's alignment and uniformity")
