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
        for name in sorted({k for r in evals for k in r["eval"]}):
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
