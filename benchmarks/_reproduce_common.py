"""Shared pieces of benchmarks/reproduce.py: training through ``zoo.train``, statistics, verdicts.

Every run trains with ``zoo.train`` from a recipe dict written to a fresh temporary TOML file,
into a fresh, not-yet-existing run directory (removed afterwards), and returns the model.
"""
from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROWS: dict[str, "Row"] = {}


@dataclass
class Row:
    """One claim of one paper; ``run(ctx) -> dict`` measures it."""

    name: str
    paper: str
    claim: str
    run: Callable[["Context"], dict[str, Any]]
    needs: tuple[str, ...] = ()        # rows whose saved results this row reads (alignment)
    notes: str = ""                    # why the row comes out as it does at this scale (docs)


def row(name: str, *, paper: str, claim: str, needs: tuple[str, ...] = (), notes: str = ""):
    """Decorator: register a row function under ``name`` (where it is defined)."""
    def deco(fn):
        ROWS[name] = Row(name, paper, claim, fn, needs, notes)
        return fn
    return deco


@dataclass
class Context:
    seeds: list[int]
    quick: bool
    results_dir: Path
    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="zoo-reproduce-")))

    def size(self, quick: int = 300) -> int | None:
        """Rows of a dataset to use: all (``None``), or ``quick`` in a quick run."""
        return quick if self.quick else None


def _no_pictures(*args, **kw) -> list:
    return []


def train(recipe: dict[str, Any], ctx: Context, overrides: dict[str, Any] | None = None):
    """``zoo.train`` on ``recipe`` (a dict) in a fresh run directory → ``(model, metrics)``.
    The run's pictures (plots/) are not drawn: the run directory is thrown away and drawing
    them would be a third of a small run's time."""
    import tomli_w

    import zoo
    import zoo.evaluation.plots
    if ctx.quick:  # a few steps: no warmup (a warmup beyond the run is a RecipeError)
        recipe = merge(recipe, **{"optim.warmup_steps": 0})
    work = Path(tempfile.mkdtemp(dir=ctx.scratch))
    path = work / "recipe.toml"
    path.write_text(tomli_w.dumps(recipe), "utf-8")
    t0 = time.perf_counter()
    drawn = zoo.evaluation.plots.plot_training, zoo.evaluation.plots.report_pictures  # put back afterwards: the process goes on
    try:
        zoo.evaluation.plots.plot_training = zoo.evaluation.plots.report_pictures = _no_pictures
        result = zoo.train(path, overrides=overrides, run_dir=work / "run", progress=False)
    finally:
        zoo.evaluation.plots.plot_training, zoo.evaluation.plots.report_pictures = drawn
        shutil.rmtree(work, ignore_errors=True)
    r = recipe
    print(f"[reproduce]   trained {r['objective']['name']} on {r['data']['dataset']}, batch {r['data']['batch_size']}, "
          f"seed {r['run'].get('seed', 0)}: {result.metrics.get('steps')} steps, {time.perf_counter() - t0:.1f} s",
          flush=True)
    result.model.eval()
    return result.model, result.metrics


def merge(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with dotted keys set: ``merge(r, **{"data.batch_size": 16})``."""
    import copy
    out = copy.deepcopy(base)
    for key, value in changes.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def stats(values: list[float]) -> dict[str, Any]:
    """``{"values", "mean", "sd"}`` (sample sd, 0 for one value)."""
    v = [float(x) for x in values]
    return {"values": v, "mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}


def fmt(s: dict[str, Any], digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}"


def compare(a: dict[str, Any], b: dict[str, Any]) -> str:
    """``"better"`` / ``"worse"`` when the means of ``a`` and ``b`` differ by more than two standard
    errors of the difference (Welch), else ``"tie"``."""
    n_a, n_b = len(a["values"]), len(b["values"])
    se = math.sqrt(a["sd"] ** 2 / n_a + b["sd"] ** 2 / n_b)
    diff = a["mean"] - b["mean"]
    if abs(diff) <= max(2 * se, 1e-9):
        return "tie"
    return "better" if diff > 0 else "worse"


def verdict(outcomes: list[str]) -> str:
    """Verdict over the comparisons a claim predicts to come out ``"better"`` (ours vs baseline),
    each from :func:`direction`: all clearly better → reproduced; none clearly worse and most on
    the claimed side (``better`` or ``tie+``) → reproduced in direction only; else not reproduced."""
    if outcomes and all(o == "better" for o in outcomes):
        return "reproduced"
    side = sum(o in ("better", "tie+") for o in outcomes)
    if outcomes and "worse" not in outcomes and side * 2 > len(outcomes):
        return "reproduced in direction only"
    return "not reproduced"


def direction(a: dict[str, Any], b: dict[str, Any]) -> str:
    """:func:`compare`, with a tie whose mean lies on ``a``'s side marked ``"tie+"``."""
    c = compare(a, b)
    return "tie+" if c == "tie" and a["mean"] > b["mean"] else c


# -- evaluation helpers on frozen embeddings -------------------------------------------------
@torch.no_grad()
def embed(model, ds, field: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(embeddings (N, D), {label: (N,)})`` of one field of a dataset split."""
    from zoo.evaluation.embed import embed_dataset
    e = embed_dataset(model, ds, fields=[field])
    return e.emb[field].numpy(), {k: v.numpy() for k, v in e.labels.items()}


def probe(x_tr, y_tr, x_te, y_te) -> float:
    """Logistic-regression accuracy on standardised features (the zoo's linear probe)."""
    from zoo.evaluation.tasks import _fit_probe
    return _fit_probe(x_tr, y_tr, x_te, y_te, "accuracy")


def knn(x_tr, y_tr, x_te, y_te, k: int = 5) -> float:
    """Cosine k-NN accuracy (majority vote) of test rows against the training rows."""
    from sklearn.neighbors import KNeighborsClassifier
    clf = KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(x_tr, y_tr)
    return float(clf.score(x_te, y_te))


def few_label_indices(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """``per_class`` seeded training rows of every class (the few-label probe's labelled set)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(y == c), min(per_class, int((y == c).sum())), replace=False)
                           for c in np.unique(y)])


def align_uniform(z1: np.ndarray, z2: np.ndarray) -> tuple[float, float]:
    """Wang & Isola's alignment (two views of the same rows) and uniformity, via the zoo's functions."""
    from zoo.objectives.align_uniform import alignment, uniformity
    a, b = torch.from_numpy(z1), torch.from_numpy(z2)
    return float(alignment(a, b)), float((uniformity(a) + uniformity(b)) / 2)


def untrained(recipe: dict[str, Any], ctx: Context, seed: int):
    """The recipe's model at its seeded initialisation (no training): the 'random init' baseline."""
    import tomli_w

    from zoo.recipes import load_recipe
    from zoo.training.build import build_model
    from zoo.training.checkpoints import seed_everything
    if ctx.quick:  # a few steps: no warmup (a warmup beyond the run is a RecipeError)
        recipe = merge(recipe, **{"optim.warmup_steps": 0})
    work = Path(tempfile.mkdtemp(dir=ctx.scratch))
    path = work / "recipe.toml"
    path.write_text(tomli_w.dumps(recipe), "utf-8")
    r = load_recipe(path)
    shutil.rmtree(work, ignore_errors=True)
    seed_everything(seed)
    return build_model(r).eval()
