"""Pictures a person would rather look at (PNGs of training curves, similarities, embeddings, retrievals).

Figures are built with matplotlib's object API (``matplotlib.figure.Figure`` saved through the Agg
canvas), never through ``pyplot``: importing this module or drawing leaves the process's matplotlib
backend (a notebook's inline backend, say) as it was. The core names no modality: where a picture
shows a raw item it asks the item's modality for a ``thumbnail`` (registered by the image and video
plugins); strings are shown as text, anything else by its row number.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MARKERS = "o^sDvP*Xh<>p"


def read_metrics(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def readable(key: str) -> str:
    """A metric key as a person reads it: ``retrieval/caption->image R@1`` → ``caption → image R@1 (retrieval)``."""
    task, _, rest = key.partition("/") if "/" in key else ("", "", key)
    rest = rest.replace("->", " → ").replace("top1", "top-1").replace("top5", "top-5").replace("_", " ")
    task = task.replace("_", "-")
    return f"{rest} ({task})" if task else rest


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


# -- training curves ------------------------------------------------------------------------------------
def plot_training(metrics_path: Path, out_dir: Path, *, train_split: str = "train",
                  eval_split: str = "test") -> list[Path]:
    """Loss, learning rate, logit scale and the evaluation metrics → ``out_dir/training.png``."""
    fig = training_figure(read_metrics(metrics_path), train_split=train_split, eval_split=eval_split)
    return [] if fig is None else [_save(fig, Path(out_dir) / "training.png")]


def training_figure(rows: list[dict], *, train_split: str = "train", eval_split: str = "test") -> Figure | None:
    """The training curves of ``metrics.jsonl`` rows; every point is marked, so a run shorter than
    ``log_every`` still shows its points."""
    train = [r for r in rows if "loss" in r]
    if not train:
        return None
    evals = [r for r in rows if "eval" in r]
    panels = [(k, title) for k, title in (("loss", f"training loss (batches of '{train_split}')"),
                                          ("lr", "learning rate"), ("logit_scale", "logit scale (1/τ)"))
              if any(k in r for r in train)]
    n = len(panels) + bool(evals)
    fig = _figure(4.4 * n, 3.6)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (key, title) in zip(axes, panels):
        pts = [(r["step"], r[key]) for r in train if key in r]
        ax.plot(*zip(*pts), lw=1.4, marker="o", ms=3)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if evals:
        ax = axes[-1]
        names = sorted({k for r in evals for k in r["eval"] if isinstance(r["eval"][k], (int, float))})
        headline = [k for k in names if k.endswith(("top1", "R@1", "accuracy (embeddings)", "r2 (embeddings)"))]
        for i, name in enumerate((headline or names)[:6]):
            pts = [(r["step"], r["eval"][name]) for r in evals if name in r["eval"]]
            ax.plot(*zip(*pts), marker=MARKERS[i % len(MARKERS)], ms=5, label=readable(name))
        ax.set_title(f"evaluation on the held-out '{eval_split}' split", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("score")
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# -- helpers over an Embedded ---------------------------------------------------------------------------
def _labels(embedded):
    return next(iter(embedded.labels.values()), None)


def _tick(raw: Any, label: int | None, class_names, width: int = 28) -> str:
    """A row's tick label: its caption (truncated), else its class name, else its row number."""
    if isinstance(raw, str):
        return raw if len(raw) <= width else raw[:width - 1] + "…"
    if label is not None:
        return str(class_names[label]) if class_names is not None else str(label)
    return ""


def _thumbnail_of(embedded, field: str):
    """The ``thumbnail`` capability of ``field``'s modality (None: the modality has none, or is unknown)."""
    from zoo.errors import UnknownNameError
    from zoo.plugins import registry
    try:
        return registry().modality(embedded.modalities.get(field, "")).thumbnail
    except UnknownNameError:  # no such modality: no thumbnails
        return None


def _colours(n: int):
    """``n`` distinct colours: tab10 up to 10 classes, tab20 up to 20, else evenly spread over turbo."""
    import matplotlib
    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    return [matplotlib.colormaps["turbo"](i / max(1, n - 1)) for i in range(n)]


# -- similarity matrices --------------------------------------------------------------------------------
def plot_similarity(embedded, out: Path, n: int = 24, class_names=None, score=None) -> Path:
    return _save(similarity_figure(embedded, n=n, class_names=class_names, score=score), out)


def similarity_figure(embedded, n: int = 24, class_names=None, score=None) -> Figure:
    """Heat maps of the similarities of ``n`` rows, sorted by class (same-class blocks sit on the
    diagonal), ticks labelled by caption where a field is text, else by class.

    - every pair of fields: cosine similarity (the paired item is on the diagonal);
    - ``score`` given (the objective's own score of one modality against the others, e.g. Symile's
      multilinear inner product) and ≥ 3 fields: that score of each field's candidates given the
      other fields of each row, instead of the pairwise cosines that score ignores;
    - one field (two augmented views of one modality were trained, one is embedded): the cosine
      between *different* items, the trivial self-similarity diagonal left blank.
    """
    import torch
    fields = list(embedded.emb)
    y = _labels(embedded)
    rows = torch.arange(min(n, len(embedded.emb[fields[0]])))
    if y is not None:
        rows = rows[torch.argsort(y[rows], stable=True)]

    def ticks(field):
        raws = embedded.raws.get(field) if field else None
        return [_tick(raws[r] if raws else None, int(y[r]) if y is not None else None, class_names) for r in rows]

    emb = {f: embedded.emb[f][rows] for f in fields}
    panels = []  # (matrix, title, row field, column field)
    if score is not None and len(fields) >= 3:
        for f in fields:
            others = {g: emb[g] for g in fields if g != f}
            panels.append((score(others, emb[f]), f"objective's score: {f} given {' + '.join(others)}",
                           " + ".join(others), f))
    elif len(fields) == 1:
        f = fields[0]
        sim = emb[f] @ emb[f].T
        sim.fill_diagonal_(float("nan"))
        panels.append((sim, f"cosine between different {f} items (the diagonal, itself, left blank)", f, f))
    else:
        for i, a in enumerate(fields):
            for b in fields[i + 1:]:
                panels.append((emb[a] @ emb[b].T, f"cosine similarity: {a} × {b}", a, b))
    fig = _figure(5.6 * len(panels), 5.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (sim, title, a, b) in zip(axes, panels):
        sim = sim.float().numpy()
        lim = float(abs(sim[sim == sim]).max()) if (sim == sim).any() else 1.0
        im = ax.imshow(sim, cmap="viridis", vmin=-lim if sim[sim == sim].min() < 0 else 0, vmax=lim)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(b)
        ax.set_ylabel(a)
        ax.set_xticks(range(len(rows)), ticks(b), rotation=90, fontsize=5)
        ax.set_yticks(range(len(rows)), ticks(a if a in embedded.emb else None), fontsize=5)  # a combination: class
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


# -- one shared PCA -------------------------------------------------------------------------------------
def _pca2(z):
    """``(N, D)`` → its projection on the first two principal components ``(N, 2)`` and their
    explained-variance ratios."""
    import torch
    mean = z.mean(0, keepdim=True)
    zc = z - mean
    _, s, v = torch.linalg.svd(zc, full_matrices=False)
    var = s.pow(2)
    return v[:2].T, mean, (var[:2] / var.sum().clamp(min=1e-12)).tolist()


def plot_embeddings(embedded, out: Path, label: str | None = None, class_names=None) -> Path:
    return _save(embeddings_figure(embedded, label=label, class_names=class_names), out)


def embeddings_figure(embedded, label: str | None = None, class_names=None, pairs: int = 40) -> Figure:
    """Every field's embeddings in ONE PCA (fitted on all fields together), so aligned modalities land
    on each other; a first panel overlays the fields (marker = field, thin lines join the first
    ``pairs`` paired rows), then one panel per field on the same axes. Colour = class."""
    import numpy as np
    import torch
    fields = list(embedded.emb)
    y = embedded.labels.get(label) if label else _labels(embedded)
    basis, mean, ratio = _pca2(torch.cat([embedded.emb[f] for f in fields]).float())
    proj = {f: ((embedded.emb[f].float() - mean) @ basis).numpy() for f in fields}  # (N, 2) each
    classes = sorted(set(y.tolist())) if y is not None else [None]
    colours = dict(zip(classes, _colours(len(classes))))
    overlay = len(fields) > 1
    fig = _figure(4.6 * (len(fields) + overlay), 4.4)
    axes = fig.subplots(1, len(fields) + overlay, squeeze=False, sharex=True, sharey=True)[0]
    panels = axes[1:] if overlay else axes
    if overlay:
        for i in range(min(pairs, len(proj[fields[0]]))):
            pts = np.stack([proj[f][i] for f in fields])
            axes[0].plot(pts[:, 0], pts[:, 1], color="0.6", lw=0.5, zorder=0)
    for j, f in enumerate(fields):
        for ax, marker in ((axes[0], MARKERS[j % len(MARKERS)]), (panels[j], "o"))[int(not overlay):]:
            for c in classes:
                sel = slice(None) if c is None else (y == c).numpy()
                name = None if c is None or (overlay and ax is axes[0]) else (
                    str(class_names[c]) if class_names is not None and c < len(class_names) else str(c))
                ax.scatter(proj[f][sel, 0], proj[f][sel, 1], s=9, marker=marker, color=colours[c], label=name,
                           alpha=0.8, linewidths=0)
        panels[j].set_title(f"{f}" + ("" if overlay else ": PCA of its embeddings"), fontsize=10)
    if overlay:
        from matplotlib.lines import Line2D
        axes[0].legend([Line2D([], [], marker=MARKERS[j % len(MARKERS)], ls="", color="0.3")
                        for j in range(len(fields))], fields, fontsize=7, loc="best", title="field", title_fontsize=7)
        axes[0].set_title("all fields in one PCA (grey lines join the items of a pair)", fontsize=10)
    if y is not None and len(classes) <= 20:
        axes[-1].legend(fontsize=6, loc="best", markerscale=1.5)
    for ax in axes:
        ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
        ax.grid(alpha=0.2)
    axes[0].set_ylabel(f"PC2 ({ratio[1]:.0%} of variance)")
    fig.tight_layout()
    return fig


# -- retrieval examples ---------------------------------------------------------------------------------
def plot_retrieval(embedded, query_field: str, target_field: str, out: Path, queries: int = 5, k: int = 5,
                   score=None) -> Path:
    return _save(retrieval_figure(embedded, query_field, target_field, queries=queries, k=k, score=score), out)


def retrieval_figure(embedded, query_field: str, target_field: str, queries: int = 5, k: int = 5,
                     score=None) -> Figure:
    """For ``queries`` rows of ``query_field`` (spread over the split), the top-``k`` items of
    ``target_field`` with their score; green frames mark hits of the query's label (what the
    label-matched metric counts), ★ the query's own pair. With ``score`` (the objective's own,
    e.g. Symile's) and ≥ 3 fields, the query is every other field of the row, scored by it."""
    import torch
    thumb = _thumbnail_of(embedded, target_field)
    query_thumb = _thumbnail_of(embedded, query_field)
    y = _labels(embedded)
    n = len(embedded.emb[query_field])
    picks = torch.linspace(0, n - 1, min(queries, n)).round().long().tolist()
    others = [f for f in embedded.emb if f != target_field]
    if score is not None and len(embedded.emb) >= 3:
        sim = score({f: embedded.emb[f][picks] for f in others}, embedded.emb[target_field])  # (Q, N)
        how, query_name = "the objective's score", " + ".join(others)
    else:
        sim = embedded.emb[query_field][picks] @ embedded.emb[target_field].T  # (Q, N)
        how, query_name = "cosine", query_field
    top = sim.topk(min(k, sim.shape[1]), dim=1)
    fig = _figure(1.75 * (k + 1), 1.9 * len(picks))
    axes = fig.subplots(len(picks), k + 1, squeeze=False)
    for row, q in enumerate(picks):
        _draw_item(axes[row][0], embedded.raws[query_field][q], query_thumb, q, width=22)
        axes[row][0].set_title(f"query ({query_name})", fontsize=7)
        for j, (idx, s) in enumerate(zip(top.indices[row].tolist(), top.values[row].tolist())):
            ax = axes[row][j + 1]
            _draw_item(ax, embedded.raws[target_field][idx], thumb, idx, width=16)
            same = y is not None and int(y[idx]) == int(y[q])
            mark = " ★" if idx == q else (" ✓" if same else "")
            ax.set_title(f"#{j + 1}  {s:.2f}{mark}", fontsize=7, color="green" if same or idx == q else "black")
            for spine in ax.spines.values():
                spine.set_edgecolor("green" if same or idx == q else "0.7")
                spine.set_linewidth(2.5 if same or idx == q else 0.8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{query_name} → {target_field}: top-{k} by {how} (green ✓ = same label, ★ = its own pair)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def _draw_item(ax, raw: Any, thumbnail, index: int, width: int) -> None:
    picture = thumbnail(raw) if thumbnail is not None and not isinstance(raw, str) else None
    if picture is not None:
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1)
        return
    text = raw if isinstance(raw, str) else f"item {index}"
    lines = textwrap.wrap(text, width=width) or [""]
    if len(lines) > 4:
        lines = lines[:3] + [lines[3][:width - 1] + "…"]
    ax.text(0.5, 0.5, "\n".join(lines), ha="center", va="center", fontsize=7, transform=ax.transAxes)


def report_pictures(model, dataset, out_dir: Path, limit: int = 512, objective=None) -> list[Path]:
    """The similarity matrix, the embedding PCA and (where a field has thumbnails) retrieval
    examples of a split. ``objective``: the trained objective; its ``similarity`` (if it has one)
    is what the similarity picture draws."""
    from zoo.evaluation.embed import embed_dataset
    from zoo.protocols import ObjectiveTraits
    emb = embed_dataset(model, dataset, keep_raws=True, limit=limit)
    names = getattr(dataset, "class_names", None)
    out_dir = Path(out_dir)
    paths = [plot_similarity(emb, out_dir / "similarity.png", class_names=names,
                             score=ObjectiveTraits.of(objective).similarity),
             plot_embeddings(emb, out_dir / "embeddings.png", class_names=names)]
    targets = [f for f in emb.emb if _thumbnail_of(emb, f) is not None]
    queries = [f for f in emb.emb if f not in targets[:1]]
    if targets and queries:
        paths.append(plot_retrieval(emb, queries[0], targets[0], out_dir / "retrieval.png",
                                    score=ObjectiveTraits.of(objective).similarity))
    return paths
