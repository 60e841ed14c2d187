"""Pictures a person would rather look at (matplotlib PNGs, written without a display)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def plot_training(metrics_path: Path, out_dir: Path) -> list[Path]:
    """Training curves (loss, learning rate, logit scale, eval metrics) → ``out_dir/training.png``."""
    rows = read_metrics(metrics_path)
    train = [r for r in rows if "loss" in r]
    if not train:
        return []
    evals = [r for r in rows if "eval" in r]
    panels = [("loss", "training loss"), ("lr", "learning rate"), ("logit_scale", "logit scale (1/τ)")]
    fig, axes = plt.subplots(1, len(panels) + bool(evals), figsize=(4.2 * (len(panels) + bool(evals)), 3.4))
    steps = [r["step"] for r in train]
    for ax, (key, title) in zip(axes, panels):
        ax.plot(steps, [r[key] for r in train], lw=1.6)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if evals:
        ax = axes[-1]
        names = sorted({k for r in evals for k in r["eval"]})
        headline = [k for k in names if k.endswith(("top1", "R@1", "accuracy (embeddings)", "r2 (embeddings)"))]
        for name in (headline or names)[:6]:
            pts = [(r["step"], r["eval"][name]) for r in evals if name in r["eval"]]
            ax.plot(*zip(*pts), marker="o", label=name)
        ax.set_title("evaluation")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "training.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return [out]


def _pca2(z):
    """Project ``(N, D)`` onto its first two principal components → ``(N, 2)``."""
    import torch
    z = z - z.mean(0, keepdim=True)
    _, _, v = torch.pca_lowrank(z, q=2, center=False)
    return (z @ v[:, :2]).numpy()


def plot_similarity(embedded, out: Path, n: int = 24, class_names=None) -> Path:
    """Heat map of the cosine similarities of ``n`` rows for each field pair, rows sorted by class
    (so same-class blocks show on the diagonal) and labelled with their class."""
    import torch
    fields = list(embedded.emb)
    pairs = [(a, b) for i, a in enumerate(fields) for b in fields[i + 1:]] or [(fields[0], fields[0])]
    y = next(iter(embedded.labels.values()), None)
    rows = torch.arange(min(n, len(embedded.emb[fields[0]])))
    if y is not None:
        rows = rows[torch.argsort(y[rows], stable=True)]
    ticks = [str(class_names[int(y[r])]) if class_names is not None else str(int(y[r])) for r in rows] \
        if y is not None else None
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.8 * len(pairs), 4.4), squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs):
        sim = (embedded.emb[a][rows] @ embedded.emb[b][rows].T).numpy()
        im = ax.imshow(sim, cmap="viridis", vmin=-1, vmax=1)
        ax.set_title(f"cosine similarity: {a} × {b}")
        ax.set_xlabel(b)
        ax.set_ylabel(a)
        if ticks:
            ax.set_xticks(range(len(rows)), ticks, rotation=90, fontsize=6)
            ax.set_yticks(range(len(rows)), ticks, fontsize=6)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _save(fig, out)


def plot_embeddings(embedded, out: Path, label: str | None = None, class_names=None) -> Path:
    """PCA of each field's embeddings, coloured by class."""
    fields = list(embedded.emb)
    y = embedded.labels.get(label) if label else next(iter(embedded.labels.values()), None)
    fig, axes = plt.subplots(1, len(fields), figsize=(4.4 * len(fields), 4), squeeze=False)
    for ax, f in zip(axes[0], fields):
        p = _pca2(embedded.emb[f])
        sc = ax.scatter(p[:, 0], p[:, 1], c=None if y is None else y.numpy(), cmap="tab10", s=8)
        ax.set_title(f"{f}: PCA of embeddings")
        if y is not None and class_names is not None and len(class_names) <= 20:
            handles = sc.legend_elements()[0]
            ax.legend(handles, [str(c) for c in class_names][:len(handles)], fontsize=6, loc="best")
    fig.tight_layout()
    return _save(fig, out)


def plot_retrieval(embedded, query_field: str, image_field: str, out: Path, queries: int = 5, k: int = 5) -> Path:
    """For the first ``queries`` rows of ``query_field``, the top-``k`` images retrieved."""
    sim = embedded.emb[query_field][:queries] @ embedded.emb[image_field].T       # (Q, N)
    top = sim.topk(k, dim=1).indices
    fig, axes = plt.subplots(queries, k + 1, figsize=(1.6 * (k + 1), 1.7 * queries), squeeze=False)
    for q in range(queries):
        query = embedded.raws[query_field][q]
        axes[q][0].text(0.5, 0.5, str(query)[:40], ha="center", va="center", wrap=True, fontsize=7)
        for j, idx in enumerate(top[q].tolist()):
            img = embedded.raws[image_field][idx]
            ax = axes[q][j + 1]
            ax.imshow(img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray")
            ax.set_title(f"#{j + 1}{' ✓' if idx == q else ''}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{query_field} → {image_field}: top-{k} (✓ = the paired image)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def report_pictures(model, dataset, out_dir: Path, limit: int = 512) -> list[Path]:
    """The similarity matrix, the embedding PCA and (for images) retrieval examples of a split."""
    from .embed import embed_dataset
    emb = embed_dataset(model, dataset, keep_raws=True, limit=limit)
    paths = [plot_similarity(emb, out_dir / "similarity.png", class_names=getattr(dataset, "class_names", None)),
             plot_embeddings(emb, out_dir / "embeddings.png", class_names=getattr(dataset, "class_names", None))]
    images = [f for f, m in emb.modalities.items() if m == "image"]
    others = [f for f in emb.emb if f not in images]
    if images and others:
        paths.append(plot_retrieval(emb, others[0], images[0], out_dir / "retrieval.png"))
    return paths
