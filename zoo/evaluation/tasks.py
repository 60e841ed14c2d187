"""Evaluation: zero-shot classification, retrieval, linear probes, alignment and uniformity.

    zoo.evaluate(model, "digits", task="zero_shot")          # {"top1": …, "top5": …}
    zoo eval runs/digits-clip --dataset digits --task retrieval

Every task embeds the evaluation split once with :func:`zoo.evaluation.embed.embed_dataset`. The defaults
are the same for ``zoo.evaluate``, ``zoo eval`` and a recipe's ``[eval]`` (the trainer calls
:func:`run_tasks`): retrieval and alignment match by label when the dataset has one label field
(``match="auto"``), by row otherwise; ``label=`` picks one of several.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from zoo import checks
from zoo.data.datasets import as_dataset, create_dataset
from zoo.errors import DataError, UnknownNameError
from zoo.evaluation.embed import Embedded, embed_dataset

TASKS = ("zero_shot", "retrieval", "linear_probe", "alignment")


def evaluate(model, dataset, task: str = "zero_shot", *, split: str = "test", train_split: str = "train",
             dataset_options: dict | None = None, batch_size: int = 256, **kw: Any) -> dict[str, float]:
    """Evaluate ``model`` on a dataset (a registered name, a Dataset or a list of dicts) for one task."""
    if task not in TASKS:
        raise UnknownNameError("evaluation task", task, TASKS)
    ds = create_dataset(dataset, split=split, **(dataset_options or {})) if isinstance(dataset, str) \
        else as_dataset(dataset)  # a Dataset, or a list of dicts
    if task == "linear_probe":
        train = kw.pop("train_dataset", None)
        if train is None:
            if not isinstance(dataset, str):
                raise DataError("linear_probe on a Dataset object needs train_dataset=<the training split>.")
            train = create_dataset(dataset, split=train_split, **(dataset_options or {}))
        return linear_probe(model, train, ds, batch_size=batch_size, **kw)
    fields = kw.pop("fields", None)
    embedded = embed_dataset(model, ds, fields=fields, batch_size=batch_size, keep_raws=task == "zero_shot")
    if task == "zero_shot":
        return zero_shot(model, ds, embedded, **kw)
    if task == "retrieval":
        return retrieval(embedded, **kw)
    return alignment_uniformity(embedded, **kw)


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
    """Class prompts (CLIP) when the dataset has them and the model a text tower; else, for
    three or more fields, the prediction of ``target`` from the others, scored by Symile's
    multilinear inner product (``score="mip"``) or by the sum of pairwise cosine similarities
    (``score="pairwise"``, how pairwise-CLIP models predict a third modality)."""
    text = [f for f, m in embedded.modalities.items() if m == "text"]
    if getattr(ds, "class_names", None) and getattr(ds, "prompts", None) and text and target is None:
        inputs = [f for f in embedded.emb if f not in text]
        field = field or (inputs[0] if inputs else None)
        if field is None:
            raise DataError("zero_shot needs a non-text field to classify.")
        tower = model.tower_for(text[0], "text")
        classes = class_embeddings(model, list(ds.class_names), list(ds.prompts), tower)   # (C, D)
        return topk_accuracy(embedded.emb[field] @ classes.T, _label(embedded, label))
    if len(embedded.emb) >= 3:
        return mip_zero_shot(embedded, target or next(iter(embedded.emb)), score=score)
    raise DataError("zero_shot needs class names and prompts with a text tower, or ≥ 3 modalities (Symile).")


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


def format_table(results: dict[str, Any]) -> str:
    width = max((len(k) for k in results), default=0)
    return "\n".join(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in results.items())


def run_tasks(model, dataset, tasks: list[str], options: dict[str, dict] | None = None, train_dataset=None,
              numbers_only: bool = True, **kw) -> dict[str, float]:
    """Several tasks at once → ``{"task/metric": value}`` (numbers only, as the trainer logs them,
    unless ``numbers_only=False``). ``train_dataset`` is the split a linear probe is fitted on."""
    out: dict[str, float] = {}
    for task in tasks:
        extra = {"train_dataset": train_dataset} if task == "linear_probe" and train_dataset is not None else {}
        res = evaluate(model, dataset, task=task, **kw, **extra, **(options or {}).get(task, {}))
        out.update({f"{task}/{k}": float(v) if isinstance(v, (int, float)) else v for k, v in res.items()
                    if isinstance(v, (int, float)) or not numbers_only})
    return out


# -- checking an [eval] section before training ---------------------------------------------------
TASK_FUNCTIONS = {"zero_shot": zero_shot, "retrieval": retrieval, "linear_probe": linear_probe,
                  "alignment": alignment_uniformity}
_DATA_ARGS = {"model", "ds", "embedded", "train_ds", "test_ds"}   # what evaluate() passes itself
TASK_CHOICES = {("retrieval", "match"): MATCHES, ("zero_shot", "score"): ("mip", "pairwise")}
# the metric names each task logs (after "task/"), as regular expressions
TASK_METRICS = {"zero_shot": r"top\d+|candidates", "retrieval": r".+->.+ .+",
                "linear_probe": r"(accuracy|r2) \(.+\)", "alignment": r"(alignment|uniformity) .+"}
LOWER_IS_BETTER = r".*(rank|alignment|uniformity).*"   # mean/median rank, Wang & Isola's two losses


def task_options(task: str) -> list[str]:
    """The options ``[eval.options.<task>]`` accepts."""
    import inspect
    names = [n for n in inspect.signature(TASK_FUNCTIONS[task]).parameters if n not in _DATA_ARGS]
    extra = ["batch_size"] + (["fields"] if task != "linear_probe" else [])  # evaluate() takes these itself
    return [n for n in extra if n not in names] + names


def best_mode(metric: str, mode: str = "auto") -> str:
    """``"max"`` or ``"min"``: ``mode`` itself, or inferred from the metric's name (ranks and
    alignment/uniformity: lower is better; accuracies, recalls, R²: higher)."""
    import re
    if mode != "auto":
        return mode
    return "min" if re.fullmatch(LOWER_IS_BETTER, metric.split("/", 1)[-1]) else "max"


def eval_problems(tasks: list[str], options: dict, best_metric: str) -> list[tuple[str, str]]:
    """What is wrong with an ``[eval]`` section, as ``(recipe key, problem and fix)`` pairs."""
    import re

    from zoo.errors import closest
    out = []
    for task in tasks:
        if task not in TASKS:
            near = closest(task, TASKS)
            out.append(("eval.tasks", f"unknown evaluation task {task!r}"
                        + (f"; did you mean {near[0]!r}?" if near else "") + f" Tasks: {', '.join(TASKS)}."))
    for task, opts in options.items():
        key = f"eval.options.{task}"
        if task not in TASKS:  # (options of a task missing from eval.tasks are allowed, and unused)
            out.append((key, f"options for {task!r}, which is not an evaluation task; tasks: {', '.join(TASKS)}."))
            continue
        if not isinstance(opts, dict):
            out.append((key, f"must be a table of {task}'s options, e.g. {{ batch_size = 128 }}."))
            continue
        if task not in TASK_FUNCTIONS:  # a task without a signature to check against
            continue
        valid = task_options(task)
        for name, value in opts.items():
            choices = TASK_CHOICES.get((task, name))
            if name not in valid:
                out.append((f"{key}.{name}", f"{task} has no option {name!r}; valid: {', '.join(valid)}."))
            elif choices and value not in choices:
                out.append((f"{key}.{name}", f"= {value!r}; valid: {', '.join(choices)}."))
    if best_metric:
        task, sep, metric = best_metric.partition("/")
        if not tasks:
            out.append(("eval.best_metric", "is set but eval.tasks is empty; add the task that logs it."))
        elif not sep or task not in tasks or not re.fullmatch(TASK_METRICS.get(task, ".+"), metric):
            shown = "; ".join(f"{t}/{TASK_METRICS[t]}" for t in tasks if t in TASK_METRICS)
            out.append(("eval.best_metric", f"= {best_metric!r} is not a metric the tasks log: they log "
                                            f"\"task/metric\" names matching {shown} (e.g. \"zero_shot/top1\", "
                                            f"\"retrieval/image->text R@1\")."))
    return out


def check_metric_fields(best_metric: str, dataset) -> None:
    """The fields a ``retrieval``/``alignment`` best metric names are fields of the evaluation dataset."""
    import re

    from zoo.errors import RecipeError
    fields = list(getattr(dataset, "fields", {}) or {})
    task, _, metric = best_metric.partition("/")
    pair = re.fullmatch(r"(.+)->(.+?) \S+", metric) if task == "retrieval" else None
    if pair:
        named = [pair.group(1), pair.group(2)]
    elif task == "alignment" and metric.startswith("uniformity "):
        named = [metric.split(" ", 1)[1]]
    elif task == "alignment" and metric.startswith("alignment "):
        ab = metric.split(" ", 1)[1]
        named = next(([a, b] for a in fields for b in fields if f"{a}-{b}" == ab), [ab])
    else:
        return
    missing = [f for f in named if f not in fields]
    if missing:
        raise RecipeError(f"eval.best_metric = {best_metric!r} names field(s) {missing} that the evaluation dataset "
                          f"does not have; its fields are {fields}.")
